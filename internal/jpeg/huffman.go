package jpeg

const lookahead = 8

// huffTable is a Huffman table expanded for decoding (jdhuff.c's
// d_derived_tbl).
type huffTable struct {
	maxcode   [18]int32
	valoffset [18]int32
	vals      [256]uint8
	// lookup[b] for the next 8 bits b: code length<<8 | symbol, or
	// (lookahead+1)<<8 if the code is longer than 8 bits.
	lookup [1 << lookahead]uint16
}

// build expands def like jpeg_make_d_derived_tbl, with the same checks.
func (t *huffTable) build(def *huffDef, isDC bool) error {
	var huffsize [257]uint8
	var huffcode [257]uint32
	p := 0
	for l := 1; l <= 16; l++ {
		n := int(def.bits[l])
		if p+n > 256 {
			return FormatError("bogus Huffman table definition")
		}
		for ; n > 0; n-- {
			huffsize[p] = uint8(l)
			p++
		}
	}
	huffsize[p] = 0
	numsymbols := p

	code := uint32(0)
	si := int(huffsize[0])
	p = 0
	for huffsize[p] != 0 {
		for int(huffsize[p]) == si {
			huffcode[p] = code
			p++
			code++
		}
		if uint64(code) >= uint64(1)<<uint(si) {
			return FormatError("bogus Huffman table definition")
		}
		code <<= 1
		si++
	}

	p = 0
	for l := 1; l <= 16; l++ {
		if def.bits[l] != 0 {
			t.valoffset[l] = int32(p) - int32(huffcode[p])
			p += int(def.bits[l])
			t.maxcode[l] = int32(huffcode[p-1])
		} else {
			t.maxcode[l] = -1
		}
	}
	t.valoffset[17] = 0
	t.maxcode[17] = 0xFFFFF

	for i := range t.lookup {
		t.lookup[i] = (lookahead + 1) << lookahead
	}
	p = 0
	for l := 1; l <= lookahead; l++ {
		for i := 1; i <= int(def.bits[l]); i++ {
			bits := int(huffcode[p]) << (lookahead - l)
			for ctr := 1 << (lookahead - l); ctr > 0; ctr-- {
				t.lookup[bits] = uint16(l<<lookahead) | uint16(def.vals[p])
				bits++
			}
			p++
		}
	}
	if isDC {
		for i := 0; i < numsymbols; i++ {
			if def.vals[i] > 15 {
				return FormatError("bogus Huffman table definition")
			}
		}
	}
	t.vals = def.vals
	return nil
}

// minGetBits is MIN_GET_BITS for a 64-bit bit buffer.
const minGetBits = 64 - 7

// fillBits loads the bit buffer to at least minGetBits bits unless a marker
// stops it (jpeg_fill_bit_buffer). If fewer than nbits bits are then
// available the buffer is padded with zero bits and the decoder notes that
// it ran out of data.
func (d *decoder) fillBits(nbits int) {
	if d.unreadMarker == 0 {
		for d.bitsLeft < minGetBits {
			var c int
			if d.pos < len(d.data) {
				c = int(d.data[d.pos])
				d.pos++
			} else {
				c = d.readByte()
			}
			if c == 0xFF {
				for {
					if d.pos < len(d.data) {
						c = int(d.data[d.pos])
						d.pos++
					} else {
						c = d.readByte()
					}
					if c != 0xFF {
						break
					}
				}
				if c == 0 {
					c = 0xFF
				} else {
					d.unreadMarker = c
					goto noMore
				}
			}
			d.bitBuf = d.bitBuf<<8 | uint64(c)
			d.bitsLeft += 8
		}
		return
	}
noMore:
	if nbits > d.bitsLeft {
		if !d.insufficient {
			d.warn("corrupt data: premature end of data segment")
			d.insufficient = true
		}
		d.bitBuf <<= uint(minGetBits - d.bitsLeft)
		d.bitsLeft = minGetBits
	}
}

// getBits returns the next n (1..16) bits.
func (d *decoder) getBits(n int) int {
	if d.bitsLeft < n {
		d.fillBits(n)
	}
	d.bitsLeft -= n
	return int(d.bitBuf>>uint(d.bitsLeft)) & (1<<uint(n) - 1)
}

func (d *decoder) getBit() int {
	if d.bitsLeft < 1 {
		d.fillBits(1)
	}
	d.bitsLeft--
	return int(d.bitBuf>>uint(d.bitsLeft)) & 1
}

// decodeHuff decodes one Huffman symbol (HUFF_DECODE).
func (d *decoder) decodeHuff(t *huffTable) int {
	if d.bitsLeft < lookahead {
		d.fillBits(0)
		if d.bitsLeft < lookahead {
			return d.decodeHuffSlow(t, 1)
		}
	}
	look := int(d.bitBuf>>uint(d.bitsLeft-lookahead)) & (1<<lookahead - 1)
	e := t.lookup[look]
	if nb := int(e >> lookahead); nb <= lookahead {
		d.bitsLeft -= nb
		return int(e & 0xFF)
	}
	return d.decodeHuffSlow(t, lookahead+1)
}

// decodeHuffSlow is jpeg_huff_decode: codes longer than the lookahead, and
// everything near the end of the data.
func (d *decoder) decodeHuffSlow(t *huffTable, l int) int {
	code := int32(d.getBits(l))
	for code > t.maxcode[l] {
		code = code<<1 | int32(d.getBit())
		l++
	}
	if l > 16 {
		d.warn("corrupt data: bad Huffman code")
		return 0
	}
	return int(t.vals[(code+t.valoffset[l])&0xFF])
}

// extend is HUFF_EXTEND: the signed value of an s-bit magnitude category.
func extend(r, s int) int {
	if r < 1<<uint(s-1) {
		return r + (-1 << uint(s)) + 1
	}
	return r
}

// Standard Huffman tables (JPEG Annex K.3), installed for sequential
// Huffman files whose tables 0 and 1 are not defined by the first scan
// (Motion-JPEG style), as libjpeg-turbo does.
var (
	stdDCLumBits   = [17]uint8{0, 0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0}
	stdDCChromBits = [17]uint8{0, 0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0}
	stdDCVals      = []uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	stdACLumBits   = [17]uint8{0, 0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d}
	stdACChromBits = [17]uint8{0, 0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77}
	stdACLumVals   = []uint8{
		0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12,
		0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
		0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08,
		0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
		0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16,
		0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
		0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
		0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
		0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59,
		0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
		0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79,
		0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
		0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98,
		0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
		0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6,
		0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
		0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4,
		0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
		0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea,
		0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
		0xf9, 0xfa,
	}
	stdACChromVals = []uint8{
		0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21,
		0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
		0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91,
		0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
		0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34,
		0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
		0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38,
		0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
		0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58,
		0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
		0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78,
		0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
		0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96,
		0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
		0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4,
		0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
		0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2,
		0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
		0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9,
		0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
		0xf9, 0xfa,
	}
)

func stdDef(bits [17]uint8, vals []uint8) *huffDef {
	h := &huffDef{bits: bits}
	copy(h.vals[:], vals)
	return h
}

// installStdTables fills undefined tables 0 and 1 with the standard ones.
func (d *decoder) installStdTables() {
	if d.dcDefs[0] == nil {
		d.dcDefs[0] = stdDef(stdDCLumBits, stdDCVals)
	}
	if d.acDefs[0] == nil {
		d.acDefs[0] = stdDef(stdACLumBits, stdACLumVals)
	}
	if d.dcDefs[1] == nil {
		d.dcDefs[1] = stdDef(stdDCChromBits, stdDCVals)
	}
	if d.acDefs[1] == nil {
		d.acDefs[1] = stdDef(stdACChromBits, stdACChromVals)
	}
}
