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

// idctRange maps a descaled IDCT output x (taken modulo 1024) to a sample
// like libjpeg's range-limit table: x is read as a signed 10-bit value,
// shifted by +128 and clamped to 0..255.
var idctRange = func() (t [1024]byte) {
	for i := range t {
		v := i
		if v >= 512 {
			v -= 1024
		}
		v += 128
		if v < 0 {
			v = 0
		} else if v > 255 {
			v = 255
		}
		t[i] = byte(v)
	}
	return t
}()

// idctIslow dequantizes coef with q and writes the 8x8 inverse DCT to out
// (row stride `stride`), exactly like jpeg_idct_islow.
func idctIslow(coef *[64]int16, q *[64]int32, out []byte, stride int) {
	var ws [64]int32
	for col := 0; col < 8; col++ {
		if coef[8+col] == 0 && coef[16+col] == 0 && coef[24+col] == 0 &&
			coef[32+col] == 0 && coef[40+col] == 0 && coef[48+col] == 0 &&
			coef[56+col] == 0 {
			dc := int32(uint32(int32(coef[col])*q[col]) << pass1Bits)
			ws[col], ws[8+col], ws[16+col], ws[24+col] = dc, dc, dc, dc
			ws[32+col], ws[40+col], ws[48+col], ws[56+col] = dc, dc, dc, dc
			continue
		}
		z2 := int64(int32(coef[16+col]) * q[16+col])
		z3 := int64(int32(coef[48+col]) * q[48+col])
		z1 := (z2 + z3) * fix0_541196100
		tmp2 := z1 + z3*(-fix1_847759065)
		tmp3 := z1 + z2*fix0_765366865

		z2 = int64(int32(coef[col]) * q[col])
		z3 = int64(int32(coef[32+col]) * q[32+col])
		tmp0 := (z2 + z3) << constBits
		tmp1 := (z2 - z3) << constBits

		tmp10 := tmp0 + tmp3
		tmp13 := tmp0 - tmp3
		tmp11 := tmp1 + tmp2
		tmp12 := tmp1 - tmp2

		tmp0 = int64(int32(coef[56+col]) * q[56+col])
		tmp1 = int64(int32(coef[40+col]) * q[40+col])
		tmp2 = int64(int32(coef[24+col]) * q[24+col])
		tmp3 = int64(int32(coef[8+col]) * q[8+col])

		z1 = tmp0 + tmp3
		z2 = tmp1 + tmp2
		z3 = tmp0 + tmp2
		z4 := tmp1 + tmp3
		z5 := (z3 + z4) * fix1_175875602

		tmp0 *= fix0_298631336
		tmp1 *= fix2_053119869
		tmp2 *= fix3_072711026
		tmp3 *= fix1_501321110
		z1 *= -fix0_899976223
		z2 *= -fix2_562915447
		z3 *= -fix1_961570560
		z4 *= -fix0_390180644

		z3 += z5
		z4 += z5

		tmp0 += z1 + z3
		tmp1 += z2 + z4
		tmp2 += z2 + z3
		tmp3 += z1 + z4

		const sh = constBits - pass1Bits
		const rnd = 1 << (sh - 1)
		ws[col] = int32((tmp10 + tmp3 + rnd) >> sh)
		ws[56+col] = int32((tmp10 - tmp3 + rnd) >> sh)
		ws[8+col] = int32((tmp11 + tmp2 + rnd) >> sh)
		ws[48+col] = int32((tmp11 - tmp2 + rnd) >> sh)
		ws[16+col] = int32((tmp12 + tmp1 + rnd) >> sh)
		ws[40+col] = int32((tmp12 - tmp1 + rnd) >> sh)
		ws[24+col] = int32((tmp13 + tmp0 + rnd) >> sh)
		ws[32+col] = int32((tmp13 - tmp0 + rnd) >> sh)
	}

	for row := 0; row < 8; row++ {
		w := (*[8]int32)(ws[row*8 : row*8+8])
		o := out[row*stride : row*stride+8 : row*stride+8]
		if w[1] == 0 && w[2] == 0 && w[3] == 0 && w[4] == 0 && w[5] == 0 && w[6] == 0 && w[7] == 0 {
			const sh = pass1Bits + 3
			v := idctRange[int((int64(w[0])+(1<<(sh-1)))>>sh)&1023]
			o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7] = v, v, v, v, v, v, v, v
			continue
		}
		z2 := int64(w[2])
		z3 := int64(w[6])
		z1 := (z2 + z3) * fix0_541196100
		tmp2 := z1 + z3*(-fix1_847759065)
		tmp3 := z1 + z2*fix0_765366865

		tmp0 := (int64(w[0]) + int64(w[4])) << constBits
		tmp1 := (int64(w[0]) - int64(w[4])) << constBits

		tmp10 := tmp0 + tmp3
		tmp13 := tmp0 - tmp3
		tmp11 := tmp1 + tmp2
		tmp12 := tmp1 - tmp2

		tmp0 = int64(w[7])
		tmp1 = int64(w[5])
		tmp2 = int64(w[3])
		tmp3 = int64(w[1])

		z1 = tmp0 + tmp3
		z2 = tmp1 + tmp2
		z3 = tmp0 + tmp2
		z4 := tmp1 + tmp3
		z5 := (z3 + z4) * fix1_175875602

		tmp0 *= fix0_298631336
		tmp1 *= fix2_053119869
		tmp2 *= fix3_072711026
		tmp3 *= fix1_501321110
		z1 *= -fix0_899976223
		z2 *= -fix2_562915447
		z3 *= -fix1_961570560
		z4 *= -fix0_390180644

		z3 += z5
		z4 += z5

		tmp0 += z1 + z3
		tmp1 += z2 + z4
		tmp2 += z2 + z3
		tmp3 += z1 + z4

		const sh = constBits + pass1Bits + 3
		const rnd = 1 << (sh - 1)
		o[0] = idctRange[int((tmp10+tmp3+rnd)>>sh)&1023]
		o[7] = idctRange[int((tmp10-tmp3+rnd)>>sh)&1023]
		o[1] = idctRange[int((tmp11+tmp2+rnd)>>sh)&1023]
		o[6] = idctRange[int((tmp11-tmp2+rnd)>>sh)&1023]
		o[2] = idctRange[int((tmp12+tmp1+rnd)>>sh)&1023]
		o[5] = idctRange[int((tmp12-tmp1+rnd)>>sh)&1023]
		o[3] = idctRange[int((tmp13+tmp0+rnd)>>sh)&1023]
		o[4] = idctRange[int((tmp13-tmp0+rnd)>>sh)&1023]
	}
}
