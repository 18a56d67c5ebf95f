//go:build amd64 && !purego

package kernels

// winoAsm reports whether this build has the AVX2 Winograd transforms.
const winoAsm = true

//go:noescape
func winoInputAVX2(x *float32, hw, nch int, idx, mask *int32, tmp, v *float32, vstride, vstep int)

//go:noescape
func winoOutputAVX2(m *float32, mstride, mrow, nrows int, tmp, out, bias *float32, lo float32)

//go:noescape
func winoStoreAVX2(m *float32, mstride, mrow, nrows int, tmp, y *float32, offs *int, plane, ow int, bias *float32, lo float32)
