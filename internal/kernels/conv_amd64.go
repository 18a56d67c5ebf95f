//go:build amd64 && !purego

package kernels

//go:noescape
func reluAVX2(x *float32, n int)

// relu sets x[i] = max(x[i], 0), eight at a time where AVX2 is in use.
func relu(x []float32) {
	if useAVX2() && len(x) >= 8 {
		n := len(x) &^ 7
		reluAVX2(&x[0], n)
		x = x[n:]
	}
	reluGo(x)
}
