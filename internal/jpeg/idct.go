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
	var ws [64]int32 // pass-1 output, int16 values, row-major
	acZero := true
	for i := 8; i < 64; i++ {
		if coef[i] != 0 {
			acZero = false
			break
		}
	}
	if acZero {
		// The SIMD code's whole-block shortcut: a wrapping 16-bit shift.
		for col := 0; col < 8; col++ {
			dc := int32(int16(int32(coef[col])*q[col]) << pass1Bits)
			for r := 0; r < 64; r += 8 {
				ws[r+col] = dc
			}
		}
	} else {
		for col := 0; col < 8; col++ {
			c0 := int32(int16(int32(coef[col]) * q[col]))
			if coef[8+col] == 0 && coef[16+col] == 0 && coef[24+col] == 0 &&
				coef[32+col] == 0 && coef[40+col] == 0 && coef[48+col] == 0 &&
				coef[56+col] == 0 {
				// Exactly what the full pass gives for a DC-only column.
				dc := int32(sat16(c0 * 4))
				for r := 0; r < 64; r += 8 {
					ws[r+col] = dc
				}
				continue
			}
			var v [8]int32
			v[0] = c0
			for k := 1; k < 8; k++ {
				v[k] = int32(int16(int32(coef[k*8+col]) * q[k*8+col]))
			}
			idct1D(&v, constBits-pass1Bits)
			for k := 0; k < 8; k++ {
				ws[k*8+col] = v[k]
			}
		}
	}
	for row := 0; row < 8; row++ {
		v := (*[8]int32)(ws[row*8 : row*8+8])
		o := out[row*stride : row*stride+8 : row*stride+8]
		if v[1] == 0 && v[2] == 0 && v[3] == 0 && v[4] == 0 && v[5] == 0 && v[6] == 0 && v[7] == 0 {
			const sh = constBits + pass1Bits + 3
			b := clampSample((v[0]<<constBits + 1<<(sh-1)) >> sh)
			o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7] = b, b, b, b, b, b, b, b
			continue
		}
		idct1D(v, constBits+pass1Bits+3)
		for k := 0; k < 8; k++ {
			o[k] = clampSample(v[k])
		}
	}
}

// clampSample saturates a pass-2 output (already within int16 range) to a
// signed byte and recentres it, like packsswb + paddb 128.
func clampSample(v int32) byte {
	if v < -128 {
		return 0
	}
	if v > 127 {
		return 255
	}
	return byte(v + 128)
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

// idct1D is one 8-point pass of the SIMD accurate IDCT on int16 values
// held in int32, descaling by `shift` bits; it works in place.
func idct1D(v *[8]int32, shift uint) {
	i0, i1, i2, i3 := v[0], v[1], v[2], v[3]
	i4, i5, i6, i7 := v[4], v[5], v[6], v[7]

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
	v[0] = int32(sat16((tmp10 + o3 + rnd) >> shift))
	v[7] = int32(sat16((tmp10 - o3 + rnd) >> shift))
	v[1] = int32(sat16((tmp11 + o2 + rnd) >> shift))
	v[6] = int32(sat16((tmp11 - o2 + rnd) >> shift))
	v[2] = int32(sat16((tmp12 + o1 + rnd) >> shift))
	v[5] = int32(sat16((tmp12 - o1 + rnd) >> shift))
	v[3] = int32(sat16((tmp13 + o0 + rnd) >> shift))
	v[4] = int32(sat16((tmp13 - o0 + rnd) >> shift))
}
