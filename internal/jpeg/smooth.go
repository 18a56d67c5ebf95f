package jpeg

// Interblock smoothing of progressive JPEGs (libjpeg-turbo 2.1 jdcoefct.c):
// where some of the first nine AC coefficients are not known to full
// precision, zero coefficients are estimated from the DC values of a 5x5
// neighbourhood of blocks before the IDCT.

// Natural-order positions of zigzag coefficients 1..9.
var smoothPos = [10]int{0, 1, 8, 16, 9, 2, 3, 10, 17, 24}

const savedCoefs = 10

// smoothingOK is smoothing_ok: it latches the coefficient-precision state
// and reports whether smoothing applies.
func (d *decoder) smoothingOK() bool {
	useful := false
	d.latch = make([][savedCoefs]int, 2*d.ncomp)
	for ci := range d.comps {
		c := &d.comps[ci]
		q := c.quant
		if q == nil {
			return false
		}
		for _, p := range smoothPos {
			if q[p] == 0 {
				return false
			}
		}
		cur := &d.coefBits[ci]
		prev := &d.coefBits[ci+d.ncomp]
		if cur[0] < 0 {
			return false
		}
		d.latch[ci][0] = cur[0]
		for k := 1; k < savedCoefs; k++ {
			if d.inputScanNumber > 1 {
				d.latch[ci+d.ncomp][k] = prev[k]
			} else {
				d.latch[ci+d.ncomp][k] = -1
			}
			d.latch[ci][k] = cur[k]
			if cur[k] != 0 {
				useful = true
			}
		}
	}
	return useful
}

// predict is the common estimate: num/(q<<8) rounded, limited to the bits
// not yet known (Al) and stored if the coefficient is still zero.
func predict(num, q int64, al int) int16 {
	var pred int64
	if num >= 0 {
		pred = ((q << 7) + num) / (q << 8)
		if al > 0 && pred >= 1<<uint(al) {
			pred = 1<<uint(al) - 1
		}
	} else {
		pred = ((q << 7) - num) / (q << 8)
		if al > 0 && pred >= 1<<uint(al) {
			pred = 1<<uint(al) - 1
		}
		pred = -pred
	}
	return int16(pred)
}

// outputSmooth runs the IDCT over every component with block smoothing
// (decompress_smooth_data), one iMCU row at a time.
func (d *decoder) outputSmooth() {
	last := d.totalIMCURows - 1
	var ws [64]int16
	for ci := range d.comps {
		c := &d.comps[ci]
		q := c.quant
		for imcu := 0; imcu <= last; imcu++ {
			blockRows := c.v
			if imcu == last {
				blockRows = c.bh % c.v
				if blockRows == 0 {
					blockRows = c.v
				}
			}
			bits := &d.latch[ci]
			if imcu > d.lastGoodIMCURow {
				bits = &d.latch[ci+d.ncomp]
			}
			changeDC := true
			for k := 1; k <= 9; k++ {
				if bits[k] != -1 {
					changeDC = false
				}
			}
			q00 := int64(q[0])
			q01, q10, q20, q11, q02 := int64(q[1]), int64(q[8]), int64(q[16]), int64(q[9]), int64(q[2])
			var q03, q12, q21, q30 int64
			if changeDC {
				q03, q12, q21, q30 = int64(q[3]), int64(q[10]), int64(q[17]), int64(q[24])
			}
			for br := 0; br < blockRows; br++ {
				r := imcu*c.v + br
				prevR := r
				if br > 0 || imcu > 0 {
					prevR = r - 1
				}
				prevPrevR := prevR
				if br > 1 || imcu > 1 {
					prevPrevR = r - 2
				}
				nextR := r
				if br < blockRows-1 || imcu < last {
					nextR = r + 1
				}
				nextNextR := nextR
				if br < blockRows-2 || imcu+1 < last {
					nextNextR = r + 2
				}
				row := func(rr, bx int) int {
					return int(c.coef[(rr*c.bwPad+bx)*64])
				}
				var dc [26]int // dc[1..25]
				for i := 1; i <= 5; i++ {
					dc[i] = row(prevPrevR, 0)
					dc[5+i] = row(prevR, 0)
					dc[10+i] = row(r, 0)
					dc[15+i] = row(nextR, 0)
					dc[20+i] = row(nextNextR, 0)
				}
				lastCol := c.bw - 1
				out := c.plane[r*8*c.planeW:]
				for bx := 0; bx < c.bw; bx++ {
					copy(ws[:], c.coef[(r*c.bwPad+bx)*64:(r*c.bwPad+bx)*64+64])
					if bx == 0 && bx < lastCol {
						dc[4] = row(prevPrevR, 1)
						dc[9] = row(prevR, 1)
						dc[14] = row(r, 1)
						dc[19] = row(nextR, 1)
						dc[24] = row(nextNextR, 1)
					}
					if bx+1 < lastCol {
						dc[5] = row(prevPrevR, bx+2)
						dc[10] = row(prevR, bx+2)
						dc[15] = row(r, bx+2)
						dc[20] = row(nextR, bx+2)
						dc[25] = row(nextNextR, bx+2)
					}
					d.smoothBlock(&ws, bits, &dc, changeDC, q00, q01, q10, q20, q11, q02, q03, q12, q21, q30)
					idctIslow(&ws, &c.dctTable, out[bx*8:], c.planeW)
					for i := 1; i <= 21; i += 5 {
						dc[i], dc[i+1], dc[i+2], dc[i+3] = dc[i+1], dc[i+2], dc[i+3], dc[i+4]
					}
				}
			}
		}
	}
}

func (d *decoder) smoothBlock(ws *[64]int16, bits *[savedCoefs]int, dc *[26]int, changeDC bool,
	q00, q01, q10, q20, q11, q02, q03, q12, q21, q30 int64) {
	D := func(i int) int64 { return int64(dc[i]) }
	var num int64
	// AC01
	if al := bits[1]; al != 0 && ws[1] == 0 {
		if changeDC {
			num = q00 * (-D(1) - D(2) + D(4) + D(5) - 3*D(6) + 13*D(7) -
				13*D(9) + 3*D(10) - 3*D(11) + 38*D(12) - 38*D(14) +
				3*D(15) - 3*D(16) + 13*D(17) - 13*D(19) + 3*D(20) -
				D(21) - D(22) + D(24) + D(25))
		} else {
			num = q00 * (-7*D(11) + 50*D(12) - 50*D(14) + 7*D(15))
		}
		ws[1] = predict(num, q01, al)
	}
	// AC10
	if al := bits[2]; al != 0 && ws[8] == 0 {
		if changeDC {
			num = q00 * (-D(1) - 3*D(2) - 3*D(3) - 3*D(4) - D(5) - D(6) +
				13*D(7) + 38*D(8) + 13*D(9) - D(10) + D(16) -
				13*D(17) - 38*D(18) - 13*D(19) + D(20) + D(21) +
				3*D(22) + 3*D(23) + 3*D(24) + D(25))
		} else {
			num = q00 * (-7*D(3) + 50*D(8) - 50*D(18) + 7*D(23))
		}
		ws[8] = predict(num, q10, al)
	}
	// AC20
	if al := bits[3]; al != 0 && ws[16] == 0 {
		if changeDC {
			num = q00 * (D(3) + 2*D(7) + 7*D(8) + 2*D(9) - 5*D(12) - 14*D(13) -
				5*D(14) + 2*D(17) + 7*D(18) + 2*D(19) + D(23))
		} else {
			num = q00 * (-D(3) + 13*D(8) - 24*D(13) + 13*D(18) - D(23))
		}
		ws[16] = predict(num, q20, al)
	}
	// AC11
	if al := bits[4]; al != 0 && ws[9] == 0 {
		if changeDC {
			num = q00 * (-D(1) + D(5) + 9*D(7) - 9*D(9) - 9*D(17) +
				9*D(19) + D(21) - D(25))
		} else {
			num = q00 * (D(10) + D(16) - 10*D(17) + 10*D(19) - D(2) - D(20) + D(22) -
				D(24) + D(4) - D(6) + 10*D(7) - 10*D(9))
		}
		ws[9] = predict(num, q11, al)
	}
	// AC02
	if al := bits[5]; al != 0 && ws[2] == 0 {
		if changeDC {
			num = q00 * (2*D(7) - 5*D(8) + 2*D(9) + D(11) + 7*D(12) - 14*D(13) +
				7*D(14) + D(15) + 2*D(17) - 5*D(18) + 2*D(19))
		} else {
			num = q00 * (-D(11) + 13*D(12) - 24*D(13) + 13*D(14) - D(15))
		}
		ws[2] = predict(num, q02, al)
	}
	if !changeDC {
		return
	}
	// AC03
	if al := bits[6]; al != 0 && ws[3] == 0 {
		num = q00 * (D(7) - D(9) + 2*D(12) - 2*D(14) + D(17) - D(19))
		ws[3] = predict(num, q03, al)
	}
	// AC12
	if al := bits[7]; al != 0 && ws[10] == 0 {
		num = q00 * (D(7) - 3*D(8) + D(9) - D(17) + 3*D(18) - D(19))
		ws[10] = predict(num, q12, al)
	}
	// AC21
	if al := bits[8]; al != 0 && ws[17] == 0 {
		num = q00 * (D(7) - D(9) - 3*D(12) + 3*D(14) + D(17) - D(19))
		ws[17] = predict(num, q21, al)
	}
	// AC30
	if al := bits[9]; al != 0 && ws[24] == 0 {
		num = q00 * (D(7) + 2*D(8) + D(9) - D(17) - 2*D(18) - D(19))
		ws[24] = predict(num, q30, al)
	}
	// DC
	num = q00 * (-2*D(1) - 6*D(2) - 8*D(3) - 6*D(4) - 2*D(5) -
		6*D(6) + 6*D(7) + 42*D(8) + 6*D(9) - 6*D(10) -
		8*D(11) + 42*D(12) + 152*D(13) + 42*D(14) - 8*D(15) -
		6*D(16) + 6*D(17) + 42*D(18) + 6*D(19) - 6*D(20) -
		2*D(21) - 6*D(22) - 8*D(23) - 6*D(24) - 2*D(25))
	ws[0] = predict(num, q00, 0)
}
