package jpeg

import (
	"fmt"
)

// JPEG marker codes.
const (
	mSOF0  = 0xC0
	mSOF1  = 0xC1
	mSOF2  = 0xC2
	mSOF3  = 0xC3
	mDHT   = 0xC4
	mSOF5  = 0xC5
	mSOF6  = 0xC6
	mSOF7  = 0xC7
	mJPG   = 0xC8
	mSOF9  = 0xC9
	mSOF10 = 0xCA
	mSOF11 = 0xCB
	mDAC   = 0xCC
	mSOF13 = 0xCD
	mSOF14 = 0xCE
	mSOF15 = 0xCF
	mRST0  = 0xD0
	mRST7  = 0xD7
	mSOI   = 0xD8
	mEOI   = 0xD9
	mSOS   = 0xDA
	mDQT   = 0xDB
	mDNL   = 0xDC
	mDRI   = 0xDD
	mAPP0  = 0xE0
	mAPP14 = 0xEE
	mAPP15 = 0xEF
	mCOM   = 0xFE
	mTEM   = 0x01
)

const (
	maxDimension  = 65500 // JPEG_MAX_DIMENSION
	maxSampFactor = 4
	maxCompsInMCU = 10 // D_MAX_BLOCKS_IN_MCU
	maxCompsScan  = 4
	maxComponents = 10
)

// Results of readMarkers.
const (
	reachedSOS = iota
	reachedEOI
)

// component is one colour component of the frame.
type component struct {
	id         int
	index      int
	h, v       int // sampling factors
	tq         int // quantization table selector
	dcTbl      int
	acTbl      int
	quant      *[64]uint16 // latched at the component's first scan
	bw, bh     int         // width_in_blocks, height_in_blocks
	bwPad      int         // bw rounded up to h (coefficient buffer width)
	bhPad      int         // bh rounded up to v
	dsW, dsH   int         // downsampled_width, downsampled_height
	coef       []int16     // bwPad*bhPad*64 (multi-scan) or bwPad*v*64 (one pass)
	plane      []byte      // bw*8 x bh*8 samples after the IDCT
	planeW     int
	dctTable   [64]int32 // quantizer as libjpeg's 16-bit ISLOW_MULT_TYPE
	mcuW, mcuH int       // MCU_width/height in the current scan
	lastColW   int
	lastRowH   int
}

// huffDef is a DHT table as transmitted.
type huffDef struct {
	bits [17]uint8
	vals [256]uint8
}

// readByte returns the next input byte. Past the end of the data the input
// reads as an endless repetition of FF D9 (EOI), which is what libjpeg's
// stdio source manager inserts at end of file.
func (d *decoder) readByte() int {
	if d.pos < len(d.data) {
		b := d.data[d.pos]
		d.pos++
		return int(b)
	}
	k := d.pos - len(d.data)
	d.pos++
	d.hitEOF = true
	if k&1 == 0 {
		return 0xFF
	}
	return mEOI
}

func (d *decoder) read2() int {
	hi := d.readByte()
	return hi<<8 | d.readByte()
}

// skip discards n input bytes (n may run past the end of the data).
func (d *decoder) skip(n int) {
	if n > 0 {
		if d.pos >= len(d.data) {
			d.hitEOF = true
		}
		d.pos += n
		if d.pos > len(d.data) {
			d.hitEOF = true
		}
	}
}

// firstMarker requires the SOI marker at the start of the data.
func (d *decoder) firstMarker() error {
	c := d.readByte()
	c2 := d.readByte()
	if c != 0xFF || c2 != mSOI {
		return FormatError(fmt.Sprintf("not a JPEG file: starts with 0x%02x 0x%02x", c, c2))
	}
	d.unreadMarker = c2
	return nil
}

// nextMarker finds the next marker, skipping garbage like libjpeg.
func (d *decoder) nextMarker() {
	for {
		c := d.readByte()
		for c != 0xFF {
			d.discarded++
			c = d.readByte()
		}
		for c == 0xFF {
			c = d.readByte()
		}
		if c != 0 {
			d.unreadMarker = c
			if d.discarded != 0 {
				d.warn("extraneous bytes before marker")
				d.discarded = 0
			}
			return
		}
		d.discarded += 2
	}
}

// readMarkers processes marker segments until an SOS or EOI marker.
func (d *decoder) readMarkers() (int, error) {
	for guard := 0; ; guard++ {
		if guard > 1<<20 {
			return 0, FormatError("too many marker segments")
		}
		if d.unreadMarker == 0 {
			if !d.sawSOI {
				if err := d.firstMarker(); err != nil {
					return 0, err
				}
			} else {
				d.nextMarker()
			}
		}
		m := d.unreadMarker
		var err error
		switch {
		case m == mSOI:
			if d.sawSOI {
				return 0, FormatError("duplicate SOI marker")
			}
			d.sawSOI = true
			d.restartInterval = 0
			d.sawJFIF, d.sawAdobe, d.adobeTransform = false, false, 0
		case m == mSOF0 || m == mSOF1:
			err = d.getSOF(false, false)
		case m == mSOF2:
			err = d.getSOF(true, false)
		case m == mSOF9:
			err = d.getSOF(false, true)
		case m == mSOF10:
			err = d.getSOF(true, true)
		case m == mSOF3 || m == mSOF5 || m == mSOF6 || m == mSOF7 || m == mJPG ||
			m == mSOF11 || m == mSOF13 || m == mSOF14 || m == mSOF15:
			return 0, UnsupportedError(fmt.Sprintf("JPEG process (SOF marker 0x%02x)", m))
		case m == mSOS:
			if err := d.getSOS(); err != nil {
				return 0, err
			}
			d.unreadMarker = 0
			return reachedSOS, nil
		case m == mEOI:
			d.unreadMarker = 0
			return reachedEOI, nil
		case m == mDAC:
			d.skipVariable()
		case m == mDHT:
			err = d.getDHT()
		case m == mDQT:
			err = d.getDQT()
		case m == mDRI:
			err = d.getDRI()
		case m == mAPP0 || m == mAPP14:
			d.getInterestingAPPn(m)
		case m >= mAPP0 && m <= mAPP15, m == mCOM:
			d.skipVariable()
		case m >= mRST0 && m <= mRST7, m == mTEM:
			// Parameterless; ignored outside a scan.
		case m == mDNL:
			d.skipVariable()
		default:
			return 0, FormatError(fmt.Sprintf("unsupported marker type 0x%02x", m))
		}
		if err != nil {
			return 0, err
		}
		d.unreadMarker = 0
	}
}

func (d *decoder) skipVariable() {
	l := d.read2() - 2
	d.skip(l)
}

func (d *decoder) getInterestingAPPn(m int) {
	l := d.read2() - 2
	n := 0
	if l >= 14 {
		n = 14
	} else if l > 0 {
		n = l
	}
	var b [14]byte
	for i := 0; i < n; i++ {
		b[i] = byte(d.readByte())
	}
	l -= n
	switch m {
	case mAPP0:
		if n >= 14 && b[0] == 'J' && b[1] == 'F' && b[2] == 'I' && b[3] == 'F' && b[4] == 0 {
			d.sawJFIF = true
		}
	case mAPP14:
		if n >= 12 && b[0] == 'A' && b[1] == 'd' && b[2] == 'o' && b[3] == 'b' && b[4] == 'e' {
			d.sawAdobe = true
			d.adobeTransform = int(b[11])
		}
	}
	d.skip(l)
}

func (d *decoder) getSOF(progressive, arith bool) error {
	d.progressive = progressive
	d.arith = arith
	length := d.read2()
	d.precision = d.readByte()
	d.height = d.read2()
	d.width = d.read2()
	d.ncomp = d.readByte()
	length -= 8
	if d.sawSOF {
		return FormatError("duplicate SOF marker")
	}
	if d.height <= 0 || d.width <= 0 || d.ncomp <= 0 {
		return FormatError("empty image (zero width, height or components)")
	}
	if length != d.ncomp*3 {
		return FormatError("bogus SOF marker length")
	}
	d.comps = make([]component, d.ncomp)
	for i := range d.comps {
		c := &d.comps[i]
		c.index = i
		c.id = d.readByte()
		s := d.readByte()
		c.h = s >> 4 & 15
		c.v = s & 15
		c.tq = d.readByte()
	}
	d.sawSOF = true
	return nil
}

func (d *decoder) getSOS() error {
	if !d.sawSOF {
		return FormatError("SOS marker before SOF")
	}
	length := d.read2()
	n := d.readByte()
	if length != n*2+6 || n < 1 || n > maxCompsScan {
		return FormatError("bogus SOS marker length")
	}
	d.compsInScan = n
	var cur [maxCompsScan]*component
	for i := 0; i < n; i++ {
		cc := d.readByte()
		c := d.readByte()
		var found *component
		// libjpeg's lookup: the first frame component with this id whose
		// index is not yet used as a scan slot.
		for ci := 0; ci < d.ncomp && ci < maxCompsScan; ci++ {
			if cc == d.comps[ci].id && cur[ci] == nil {
				found = &d.comps[ci]
				break
			}
		}
		if found == nil {
			return FormatError(fmt.Sprintf("invalid component ID %d in SOS", cc))
		}
		cur[i] = found
		found.dcTbl = c >> 4 & 15
		found.acTbl = c & 15
		for pi := 0; pi < i; pi++ {
			if cur[pi] == found {
				return FormatError(fmt.Sprintf("invalid component ID %d in SOS", cc))
			}
		}
	}
	d.scanComps = d.scanComps[:0]
	for i := 0; i < n; i++ {
		d.scanComps = append(d.scanComps, cur[i])
	}
	d.ss = d.readByte()
	d.se = d.readByte()
	c := d.readByte()
	d.ah = c >> 4 & 15
	d.al = c & 15
	d.nextRestartNum = 0
	d.inputScanNumber++
	return nil
}

func (d *decoder) getDHT() error {
	length := d.read2() - 2
	for length > 16 {
		index := d.readByte()
		var h huffDef
		count := 0
		for i := 1; i <= 16; i++ {
			h.bits[i] = uint8(d.readByte())
			count += int(h.bits[i])
		}
		length -= 17
		if count > 256 || count > length {
			return FormatError("bogus Huffman table definition")
		}
		for i := 0; i < count; i++ {
			h.vals[i] = uint8(d.readByte())
		}
		length -= count
		var slot **huffDef
		if index&0x10 != 0 {
			index -= 0x10
			if index < 0 || index >= 4 {
				return FormatError(fmt.Sprintf("bogus DHT index %d", index))
			}
			slot = &d.acDefs[index]
		} else {
			if index < 0 || index >= 4 {
				return FormatError(fmt.Sprintf("bogus DHT index %d", index))
			}
			slot = &d.dcDefs[index]
		}
		hc := h
		*slot = &hc
	}
	if length != 0 {
		return FormatError("bogus DHT marker length")
	}
	return nil
}

func (d *decoder) getDQT() error {
	length := d.read2() - 2
	for length > 0 {
		n := d.readByte()
		prec := n >> 4
		n &= 15
		if n >= 4 {
			return FormatError(fmt.Sprintf("bogus DQT index %d", n))
		}
		if d.quant[n] == nil {
			d.quant[n] = new([64]uint16)
		}
		q := d.quant[n]
		for i := 0; i < 64; i++ {
			var t int
			if prec != 0 {
				t = d.read2()
			} else {
				t = d.readByte()
			}
			q[zigzag[i]] = uint16(t)
		}
		length -= 65
		if prec != 0 {
			length -= 64
		}
	}
	if length != 0 {
		return FormatError("bogus DQT marker length")
	}
	return nil
}

func (d *decoder) getDRI() error {
	length := d.read2()
	if length != 4 {
		return FormatError("bogus DRI marker length")
	}
	d.restartInterval = d.read2()
	return nil
}

// readRestartMarker consumes the expected RSTn marker, resynchronising like
// jpeg_resync_to_restart if something else is found.
func (d *decoder) readRestartMarker() {
	if d.unreadMarker == 0 {
		d.nextMarker()
	}
	if d.unreadMarker == mRST0+d.nextRestartNum {
		d.unreadMarker = 0
	} else {
		d.resyncToRestart(d.nextRestartNum)
	}
	d.nextRestartNum = (d.nextRestartNum + 1) & 7
}

func (d *decoder) resyncToRestart(desired int) {
	marker := d.unreadMarker
	d.warn("corrupt data: resynchronising to restart marker")
	for guard := 0; guard < 1<<30; guard++ {
		action := 1
		switch {
		case marker < mSOF0:
			action = 2
		case marker < mRST0 || marker > mRST7:
			action = 3
		default:
			if marker == mRST0+((desired+1)&7) || marker == mRST0+((desired+2)&7) {
				action = 3
			} else if marker == mRST0+((desired-1)&7) || marker == mRST0+((desired-2)&7) {
				action = 2
			} else {
				action = 1
			}
		}
		switch action {
		case 1:
			d.unreadMarker = 0
			return
		case 2:
			d.nextMarker()
			marker = d.unreadMarker
		case 3:
			return
		}
	}
}

// zigzag maps zigzag order to natural order, with 16 extra entries so that
// corrupt run lengths past the end of a block land on coefficient 63, as in
// libjpeg's jpeg_natural_order.
var zigzag = [64 + 16]int{
	0, 1, 8, 16, 9, 2, 3, 10,
	17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34,
	27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36,
	29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46,
	53, 60, 61, 54, 47, 55, 62, 63,
	63, 63, 63, 63, 63, 63, 63, 63,
	63, 63, 63, 63, 63, 63, 63, 63,
}
