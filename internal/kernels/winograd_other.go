//go:build !amd64 || purego

package kernels

// winoAsm reports whether this build has the AVX2 Winograd transforms.
const winoAsm = false

func winoInput4AVX2(x *float32, hw, nch int, idx, mask *int32, tmp, v *float32, vstride, vstep int) {
	panic("kernels: no AVX2 Winograd transforms in this build")
}

func winoOutput4AVX2(m *float32, mstride, mrow, nrows int, tmp, out, bias *float32, lo float32) {
	panic("kernels: no AVX2 Winograd transforms in this build")
}

func winoStore4AVX2(m *float32, mstride, mrow, nrows int, tmp, y *float32, offs *int, plane, ow int, bias *float32, lo float32) {
	panic("kernels: no AVX2 Winograd transforms in this build")
}

func winoInput2AVX2(x *float32, hw, nch int, idx, mask *int32, tmp, v *float32, vstride, vstep int) {
	panic("kernels: no AVX2 Winograd transforms in this build")
}

func winoOutput2AVX2(m *float32, mstride, mrow, nrows int, tmp, out, bias *float32, lo float32) {
	panic("kernels: no AVX2 Winograd transforms in this build")
}
