//go:build purego || !amd64

package kernels

func quickGELU(x []float32, simd simdLevel) { quickGELUGo(x) }

func softmaxRow(x []float32, simd simdLevel) { softmaxRowGo(x) }
