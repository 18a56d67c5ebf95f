package jpeg

// Fixed-point constants of the accurate integer IDCT (jidctint.c), 13
// fractional bits.
const (
	constBits = 13
	pass1Bits = 2

	fix0_298631336 = 2446
	fix0_390180644 = 3196
	fix0_541196100 = 4433
	fix0_765366865 = 6270
	fix0_899976223 = 7373
	fix1_175875602 = 9633
	fix1_501321110 = 12299
	fix1_847759065 = 15137
	fix1_961570560 = 16069
	fix2_053119869 = 16819
	fix2_562915447 = 20995
	fix3_072711026 = 25172
)

// idctIslow dequantizes coef with q and writes the 8x8 inverse DCT to out
// (row stride `stride`). It computes what libjpeg-turbo's x86-64 SIMD
// accurate IDCT (jidctint-avx2.asm, used by Pillow and djpeg on x86-64)
// computes: the jidctint.c algorithm with 16-bit dequantization, 16-bit
// wrapping sums where the SIMD code adds 16-bit lanes, 32-bit products,
// saturation to 16 bits between the passes and saturation (not
// wrap-around) to 0..255 at the end. For valid data this equals the C code
// bit for bit; the difference only shows on corrupt data.
func idctIslow(coef *[64]int16, q *[64]int32, out []byte, stride int) {
	var ws [64]int16 // ws[col*8+row] after pass 1 (transposed)
	acZero := true
	for i := 8; i < 64; i++ {
		if coef[i] != 0 {
			acZero = false
			break
		}
	}
	if acZero {
		for col := 0; col < 8; col++ {
			dc := int16(int32(coef[col])*q[col]) << pass1Bits
			w := ws[col*8 : col*8+8]
			for r := range w {
				w[r] = dc
			}
		}
	} else {
		var in [8]int16
		for col := 0; col < 8; col++ {
			for k := 0; k < 8; k++ {
				in[k] = int16(int32(coef[k*8+col]) * q[k*8+col])
			}
			idct1D(&in, (*[8]int16)(ws[col*8:col*8+8]), constBits-pass1Bits)
		}
	}
	var in, res [8]int16
	for row := 0; row < 8; row++ {
		for k := 0; k < 8; k++ {
			in[k] = ws[k*8+row]
		}
		idct1D(&in, &res, constBits+pass1Bits+3)
		o := out[row*stride : row*stride+8 : row*stride+8]
		for k := 0; k < 8; k++ {
			v := res[k]
			if v < -128 {
				v = -128
			} else if v > 127 {
				v = 127
			}
			o[k] = byte(v + 128)
		}
	}
}

// sat16 is a signed saturation to 16 bits (packssdw).
func sat16(v int32) int16 {
	if v > 32767 {
		return 32767
	}
	if v < -32768 {
		return -32768
	}
	return int16(v)
}

// idct1D is one 8-point pass of the SIMD accurate IDCT, descaling by
// `shift` bits.
func idct1D(in, out *[8]int16, shift uint) {
	i0, i1, i2, i3 := int32(in[0]), int32(in[1]), int32(in[2]), int32(in[3])
	i4, i5, i6, i7 := int32(in[4]), int32(in[5]), int32(in[6]), int32(in[7])

	// Even part.
	tmp2 := i2*fix0_541196100 + i6*(fix0_541196100-fix1_847759065)
	tmp3 := i2*(fix0_541196100+fix0_765366865) + i6*fix0_541196100
	t0 := int32(int16(i0+i4)) << constBits
	t1 := int32(int16(i0-i4)) << constBits
	tmp10 := t0 + tmp3
	tmp13 := t0 - tmp3
	tmp11 := t1 + tmp2
	tmp12 := t1 - tmp2

	// Odd part.
	z3 := int32(int16(i7 + i3))
	z4 := int32(int16(i5 + i1))
	z3n := z3*(fix1_175875602-fix1_961570560) + z4*fix1_175875602
	z4n := z3*fix1_175875602 + z4*(fix1_175875602-fix0_390180644)
	o0 := i7*(fix0_298631336-fix0_899976223) + i1*(-fix0_899976223) + z3n
	o1 := i5*(fix2_053119869-fix2_562915447) + i3*(-fix2_562915447) + z4n
	o2 := i5*(-fix2_562915447) + i3*(fix3_072711026-fix2_562915447) + z3n
	o3 := i7*(-fix0_899976223) + i1*(fix1_501321110-fix0_899976223) + z4n

	rnd := int32(1) << (shift - 1)
	out[0] = sat16((tmp10 + o3 + rnd) >> shift)
	out[7] = sat16((tmp10 - o3 + rnd) >> shift)
	out[1] = sat16((tmp11 + o2 + rnd) >> shift)
	out[6] = sat16((tmp11 - o2 + rnd) >> shift)
	out[2] = sat16((tmp12 + o1 + rnd) >> shift)
	out[5] = sat16((tmp12 - o1 + rnd) >> shift)
	out[3] = sat16((tmp13 + o0 + rnd) >> shift)
	out[4] = sat16((tmp13 - o0 + rnd) >> shift)
}
