//go:build !amd64 || purego

package kernels

func biasAct(x []float32, b float32, relu bool, simd simdLevel) { biasActGo(x, b, relu) }
