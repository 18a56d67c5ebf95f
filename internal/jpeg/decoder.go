package jpeg

import (
	"fmt"
	"image"
	"runtime"
)

// Colour spaces of the coded data.
const (
	csGray = iota
	csYCbCr
	csRGB
	csCMYK
	csYCCK
)

type decoder struct {
	data   []byte
	pos    int
	hitEOF bool
	opts   Options

	unreadMarker int
	discarded    int
	warnings     int

	sawSOI, sawSOF    bool
	sawJFIF, sawAdobe bool
	adobeTransform    int
	progressive       bool
	arith             bool
	precision         int
	width, height     int
	ncomp             int
	comps             []component
	quant             [4]*[64]uint16
	dcDefs, acDefs    [4]*huffDef
	restartInterval   int
	colorSpace        int

	// Current scan.
	compsInScan     int
	scanComps       []*component
	ss, se, ah, al  int
	nextRestartNum  int
	inputScanNumber int
	mcusPerRow      int
	mcuRowsInScan   int
	blocksInMCU     int

	maxH, maxV    int
	totalIMCURows int
	multiScan     bool

	// Entropy decoder state.
	bitBuf       uint64
	bitsLeft     int
	insufficient bool
	restartsToGo int
	lastDC       [maxCompsScan]int32
	eobrun       int
	dcTabs       [4]huffTable
	acTabs       [4]huffTable

	coefBits        [][64]int // 2*ncomp rows: current, then previous
	lastGoodIMCURow int
	dcOverflow      bool
	latch           [][savedCoefs]int // smoothing_ok's coef_bits latch

	// One-pass IDCT pipeline.
	jobs     chan rowJob
	free     chan [][]int16
	pipeDone chan struct{}
	curBufs  [][]int16
}

func newDecoder(data []byte, opts Options) *decoder {
	if opts.MaxPixels <= 0 {
		opts.MaxPixels = DefaultMaxPixels
	}
	if opts.MaxScans <= 0 {
		opts.MaxScans = DefaultMaxScans
	}
	return &decoder{data: data, opts: opts}
}

// warn records a libjpeg warning (libjpeg continues after warnings).
func (d *decoder) warn(string) { d.warnings++ }

// readHeader reads markers up to the first SOS and sets up the frame.
func (d *decoder) readHeader() error {
	r, err := d.readMarkers()
	if err != nil {
		return err
	}
	if r == reachedEOI {
		if d.sawSOF {
			return FormatError("SOF marker without any SOS (tables-only file)")
		}
		return FormatError("no image in file (EOI before SOF)")
	}
	return d.initialSetup()
}

// initialSetup mirrors jdinput.c initial_setup plus the checks libjpeg
// makes when it starts decompressing.
func (d *decoder) initialSetup() error {
	if d.width > maxDimension || d.height > maxDimension {
		return FormatError(fmt.Sprintf("image %dx%d exceeds the JPEG maximum dimension %d", d.width, d.height, maxDimension))
	}
	if d.precision != 8 {
		return UnsupportedError(fmt.Sprintf("%d-bit sample precision", d.precision))
	}
	if d.ncomp > maxComponents {
		return FormatError(fmt.Sprintf("too many colour components (%d)", d.ncomp))
	}
	d.maxH, d.maxV = 1, 1
	for i := range d.comps {
		c := &d.comps[i]
		if c.h <= 0 || c.h > maxSampFactor || c.v <= 0 || c.v > maxSampFactor {
			return FormatError("bogus sampling factors")
		}
		d.maxH = max(d.maxH, c.h)
		d.maxV = max(d.maxV, c.v)
	}
	for i := range d.comps {
		c := &d.comps[i]
		c.bw = ceilDiv(d.width*c.h, d.maxH*8)
		c.bh = ceilDiv(d.height*c.v, d.maxV*8)
		c.bwPad = ceilDiv(c.bw, c.h) * c.h
		c.bhPad = ceilDiv(c.bh, c.v) * c.v
		c.dsW = ceilDiv(d.width*c.h, d.maxH)
		c.dsH = ceilDiv(d.height*c.v, d.maxV)
		c.quant = nil
	}
	d.totalIMCURows = ceilDiv(d.height, d.maxV*8)
	d.multiScan = d.compsInScan < d.ncomp || d.progressive

	// Colour space, as default_decompress_parms decides it.
	switch d.ncomp {
	case 1:
		d.colorSpace = csGray
	case 3:
		d.colorSpace = csYCbCr
		if d.sawJFIF {
			d.colorSpace = csYCbCr
		} else if d.sawAdobe {
			if d.adobeTransform == 0 {
				d.colorSpace = csRGB
			} else if d.adobeTransform != 1 {
				d.warn("unknown Adobe transform")
			}
		} else if d.comps[0].id == 82 && d.comps[1].id == 71 && d.comps[2].id == 66 {
			d.colorSpace = csRGB
		}
	case 4:
		d.colorSpace = csCMYK
		if d.sawAdobe {
			switch d.adobeTransform {
			case 0:
			case 2:
				d.colorSpace = csYCCK
			default:
				d.warn("unknown Adobe transform")
				d.colorSpace = csYCCK
			}
		}
	default:
		return UnsupportedError(fmt.Sprintf("%d colour components (Pillow supports 1, 3 or 4)", d.ncomp))
	}
	if d.arith {
		return UnsupportedError("arithmetic-coded JPEG")
	}
	// Upsampling must be by integral factors.
	for i := range d.comps {
		c := &d.comps[i]
		if d.maxH%c.h != 0 || d.maxV%c.v != 0 {
			return UnsupportedError("fractional sampling factors")
		}
	}
	if int64(d.width)*int64(d.height) > int64(d.opts.MaxPixels) {
		return fmt.Errorf("%w: %dx%d is more than %d pixels", ErrTooLarge, d.width, d.height, d.opts.MaxPixels)
	}
	return nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func (d *decoder) decode() (image.Image, error) {
	if err := d.readHeader(); err != nil {
		return nil, err
	}
	if d.progressive {
		d.coefBits = make([][64]int, 2*d.ncomp)
		for i := 0; i < d.ncomp; i++ {
			for k := range d.coefBits[i] {
				d.coefBits[i][k] = -1
			}
		}
	} else {
		d.installStdTables()
	}
	for i := range d.comps {
		c := &d.comps[i]
		rows := c.bhPad
		if !d.multiScan {
			rows = c.v
		}
		c.coef = make([]int16, c.bwPad*rows*64)
		c.planeW = c.bw * 8
		c.plane = make([]byte, c.planeW*c.bh*8)
	}
	if err := d.startInputPass(); err != nil {
		return nil, err
	}
	if !d.multiScan {
		d.startPipeline()
		d.consumeScan(true)
		d.stopPipeline()
	} else {
		scans := 1
		for {
			d.consumeScan(false)
			if d.dcOverflow {
				return nil, FormatError("corrupt data: DC coefficient out of range")
			}
			r, err := d.readMarkers()
			if err != nil {
				return nil, err
			}
			if r == reachedEOI {
				break
			}
			scans++
			if scans > d.opts.MaxScans {
				return nil, FormatError(fmt.Sprintf("more than %d scans", d.opts.MaxScans))
			}
			if err := d.startInputPass(); err != nil {
				return nil, err
			}
		}
		d.latchDCTTables()
		if d.progressive && d.smoothingOK() {
			d.outputSmooth()
		} else {
			for i := range d.comps {
				c := &d.comps[i]
				for by := 0; by < c.bh; by++ {
					d.idctBlockRow(c, c.coef, by, by)
				}
			}
		}
	}
	return d.convert(), nil
}

// latchDCTTables converts each component's latched quantization table to
// the IDCT multiplier table (libjpeg's 16-bit ISLOW_MULT_TYPE).
func (d *decoder) latchDCTTables() {
	for i := range d.comps {
		c := &d.comps[i]
		if c.quant == nil {
			c.dctTable = [64]int32{}
			continue
		}
		for k := 0; k < 64; k++ {
			c.dctTable[k] = int32(int16(c.quant[k]))
		}
	}
}

// idctBlockRow runs the IDCT over block row `row` of the coefficient buffer
// into block row by of the component's sample plane.
func (d *decoder) idctBlockRow(c *component, coef []int16, row, by int) {
	base := row * c.bwPad * 64
	out := c.plane[by*8*c.planeW:]
	for bx := 0; bx < c.bw; bx++ {
		blk := (*[64]int16)(coef[base+bx*64 : base+bx*64+64])
		idctIslow(blk, &c.dctTable, out[bx*8:], c.planeW)
	}
}

// startInputPass is per_scan_setup + latch_quant_tables + the entropy
// decoder's start_pass.
func (d *decoder) startInputPass() error {
	if d.compsInScan == 1 {
		c := d.scanComps[0]
		d.mcusPerRow = c.bw
		d.mcuRowsInScan = c.bh
		c.mcuW, c.mcuH = 1, 1
		c.lastColW = 1
		c.lastRowH = c.bh % c.v
		if c.lastRowH == 0 {
			c.lastRowH = c.v
		}
		d.blocksInMCU = 1
	} else {
		d.mcusPerRow = ceilDiv(d.width, d.maxH*8)
		d.mcuRowsInScan = ceilDiv(d.height, d.maxV*8)
		d.blocksInMCU = 0
		for _, c := range d.scanComps {
			c.mcuW, c.mcuH = c.h, c.v
			c.lastColW = c.bw % c.h
			if c.lastColW == 0 {
				c.lastColW = c.h
			}
			c.lastRowH = c.bh % c.v
			if c.lastRowH == 0 {
				c.lastRowH = c.v
			}
			if d.blocksInMCU+c.h*c.v > maxCompsInMCU {
				return FormatError("sampling factors too large for an interleaved scan")
			}
			d.blocksInMCU += c.h * c.v
		}
	}
	for _, c := range d.scanComps {
		if c.quant != nil {
			continue
		}
		if c.tq >= 4 || d.quant[c.tq] == nil {
			return FormatError(fmt.Sprintf("quantization table 0x%02x was not defined", c.tq))
		}
		q := *d.quant[c.tq]
		c.quant = &q
	}
	if !d.multiScan {
		d.latchDCTTables()
	}
	if d.progressive {
		return d.startPassProgressive()
	}
	if d.ss != 0 || d.se != 63 || d.ah != 0 || d.al != 0 {
		d.warn("scan parameters are not sequential")
	}
	for _, c := range d.scanComps {
		if err := d.buildTable(true, c.dcTbl); err != nil {
			return err
		}
		if err := d.buildTable(false, c.acTbl); err != nil {
			return err
		}
	}
	d.resetEntropy()
	return nil
}

func (d *decoder) resetEntropy() {
	d.lastDC = [maxCompsScan]int32{}
	d.bitsLeft = 0
	d.bitBuf = 0
	d.insufficient = false
	d.eobrun = 0
	d.restartsToGo = d.restartInterval
}

func (d *decoder) buildTable(isDC bool, tbl int) error {
	if tbl < 0 || tbl >= 4 {
		return FormatError(fmt.Sprintf("Huffman table 0x%02x was not defined", tbl))
	}
	def := d.acDefs[tbl]
	t := &d.acTabs[tbl]
	if isDC {
		def = d.dcDefs[tbl]
		t = &d.dcTabs[tbl]
	}
	if def == nil {
		return FormatError(fmt.Sprintf("Huffman table 0x%02x was not defined", tbl))
	}
	return t.build(def, isDC)
}

func (d *decoder) startPassProgressive() error {
	isDC := d.ss == 0
	bad := false
	if isDC {
		if d.se != 0 {
			bad = true
		}
	} else {
		if d.ss > d.se || d.se >= 64 {
			bad = true
		}
		if d.compsInScan != 1 {
			bad = true
		}
	}
	if d.ah != 0 && d.al != d.ah-1 {
		bad = true
	}
	if d.al > 13 {
		bad = true
	}
	if bad {
		return FormatError(fmt.Sprintf("invalid progressive parameters Ss=%d Se=%d Ah=%d Al=%d", d.ss, d.se, d.ah, d.al))
	}
	for _, c := range d.scanComps {
		cur := &d.coefBits[c.index]
		prev := &d.coefBits[c.index+d.ncomp]
		if !isDC && cur[0] < 0 {
			d.warn("AC scan without prior DC scan")
		}
		for k := min(d.ss, 1); k <= max(d.se, 9); k++ {
			if d.inputScanNumber > 1 {
				prev[k] = cur[k]
			} else {
				prev[k] = 0
			}
		}
		for k := d.ss; k <= d.se; k++ {
			expected := cur[k]
			if expected < 0 {
				expected = 0
			}
			if d.ah != expected {
				d.warn("bogus progression")
			}
			cur[k] = d.al
		}
	}
	for _, c := range d.scanComps {
		if isDC {
			if d.ah == 0 {
				if err := d.buildTable(true, c.dcTbl); err != nil {
					return err
				}
			}
		} else {
			if err := d.buildTable(false, c.acTbl); err != nil {
				return err
			}
		}
	}
	d.resetEntropy()
	return nil
}

func (d *decoder) processRestart() {
	d.discarded += d.bitsLeft / 8
	d.bitsLeft = 0
	d.readRestartMarker()
	d.lastDC = [maxCompsScan]int32{}
	d.eobrun = 0
	d.restartsToGo = d.restartInterval
	if d.unreadMarker == 0 {
		d.insufficient = false
	}
}

// consumeScan decodes the entropy-coded data of the current scan. In
// one-pass mode it also runs the IDCT on each iMCU row as it completes.
func (d *decoder) consumeScan(onepass bool) {
	var blocks [maxCompsInMCU]*[64]int16
	var memb [maxCompsInMCU]int
	if d.compsInScan == 1 {
		c := d.scanComps[0]
		for imcu := 0; imcu < d.totalIMCURows; imcu++ {
			if onepass {
				d.beginRow()
			}
			rows := c.v
			if imcu == d.totalIMCURows-1 {
				rows = c.lastRowH
			}
			for yo := 0; yo < rows; yo++ {
				by := imcu*c.v + yo
				row := by
				if onepass {
					row = yo
				}
				base := row * c.bwPad * 64
				for bx := 0; bx < c.bw; bx++ {
					if !d.insufficient {
						d.lastGoodIMCURow = imcu
					} else if d.restartInterval == 0 {
						continue
					}
					blocks[0] = (*[64]int16)(c.coef[base+bx*64 : base+bx*64+64])
					d.decodeMCU(blocks[:1], memb[:1])
				}
			}
			if onepass {
				d.endRow(imcu)
			}
		}
		return
	}
	n := 0
	for ci, c := range d.scanComps {
		for i := 0; i < c.h*c.v; i++ {
			memb[n] = ci
			n++
		}
	}
	for my := 0; my < d.mcuRowsInScan; my++ {
		if onepass {
			d.beginRow()
		}
		for mx := 0; mx < d.mcusPerRow; mx++ {
			if !d.insufficient {
				d.lastGoodIMCURow = my
			} else if d.restartInterval == 0 {
				continue
			}
			n := 0
			for _, c := range d.scanComps {
				for yi := 0; yi < c.v; yi++ {
					row := my*c.v + yi
					if onepass {
						row = yi
					}
					base := (row*c.bwPad + mx*c.h) * 64
					for xi := 0; xi < c.h; xi++ {
						blocks[n] = (*[64]int16)(c.coef[base+xi*64 : base+xi*64+64])
						n++
					}
				}
			}
			d.decodeMCU(blocks[:n], memb[:n])
		}
		if onepass {
			d.endRow(my)
		}
	}
}

// decodeMCU decodes one MCU with the method the scan calls for.
func (d *decoder) decodeMCU(blocks []*[64]int16, memb []int) {
	if d.restartInterval != 0 {
		if d.restartsToGo == 0 {
			d.processRestart()
		}
	}
	switch {
	case !d.progressive:
		if !d.insufficient {
			d.decodeMCUSequential(blocks, memb)
		}
	case d.ss == 0 && d.ah == 0:
		if !d.insufficient {
			d.decodeDCFirst(blocks, memb)
		}
	case d.ss == 0:
		d.decodeDCRefine(blocks)
	case d.ah == 0:
		if !d.insufficient {
			d.decodeACFirst(blocks[0])
		}
	default:
		if !d.insufficient {
			d.decodeACRefine(blocks[0])
		}
	}
	if d.restartInterval != 0 {
		d.restartsToGo--
	}
}

func (d *decoder) decodeMCUSequential(blocks []*[64]int16, memb []int) {
	for i, blk := range blocks {
		c := d.scanComps[memb[i]]
		dc := &d.dcTabs[c.dcTbl]
		ac := &d.acTabs[c.acTbl]
		s := d.decodeHuff(dc)
		if s != 0 {
			r := d.getBits(s)
			s = extend(r, s)
		}
		d.lastDC[memb[i]] += int32(s)
		blk[0] = int16(d.lastDC[memb[i]])
		for k := 1; k < 64; k++ {
			// Inlined decodeHuff: reading ahead early is harmless (it never
			// pads), so refill whenever fewer than 32 bits are buffered.
			if d.bitsLeft < 32 {
				d.fillBits(0)
			}
			var s int
			if d.bitsLeft >= lookahead {
				e := ac.lookup[(d.bitBuf>>uint(d.bitsLeft-lookahead))&(1<<lookahead-1)]
				if nb := int(e >> lookahead); nb <= lookahead {
					d.bitsLeft -= nb
					s = int(e & 0xFF)
				} else {
					s = d.decodeHuffSlow(ac, lookahead+1)
				}
			} else {
				s = d.decodeHuffSlow(ac, 1)
			}
			r := s >> 4
			s &= 15
			if s != 0 {
				k += r
				var v int
				if d.bitsLeft >= s {
					d.bitsLeft -= s
					v = int(d.bitBuf>>uint(d.bitsLeft)) & (1<<uint(s) - 1)
				} else {
					v = d.getBits(s)
				}
				blk[zigzag[k]] = int16(extend(v, s))
			} else {
				if r != 15 {
					break
				}
				k += 15
			}
		}
	}
}

func (d *decoder) decodeDCFirst(blocks []*[64]int16, memb []int) {
	for i, blk := range blocks {
		ci := memb[i]
		c := d.scanComps[ci]
		s := d.decodeHuff(&d.dcTabs[c.dcTbl])
		if s != 0 {
			r := d.getBits(s)
			s = extend(r, s)
		}
		// libjpeg errors out on DC overflow here (JERR_BAD_DCT_COEF); we
		// cannot return an error mid-MCU, so saturate instead: only
		// corrupt files reach this.
		v := int64(d.lastDC[ci]) + int64(s)
		if v > 1<<31-1 || v < -1<<31 {
			d.dcOverflow = true
			v = 0
		}
		d.lastDC[ci] = int32(v)
		blk[0] = int16(uint32(int32(v)) << uint(d.al))
	}
}

func (d *decoder) decodeDCRefine(blocks []*[64]int16) {
	p1 := int16(1) << uint(d.al)
	for _, blk := range blocks {
		if d.getBit() != 0 {
			blk[0] |= p1
		}
	}
}

func (d *decoder) decodeACFirst(blk *[64]int16) {
	if d.eobrun > 0 {
		d.eobrun--
		return
	}
	t := &d.acTabs[d.scanComps[0].acTbl]
	for k := d.ss; k <= d.se; k++ {
		s := d.decodeHuff(t)
		r := s >> 4
		s &= 15
		if s != 0 {
			k += r
			r = d.getBits(s)
			s = extend(r, s)
			blk[zigzag[k]] = int16(uint32(int32(s)) << uint(d.al))
		} else {
			if r == 15 {
				k += 15
			} else {
				eob := 1 << uint(r)
				if r != 0 {
					eob += d.getBits(r)
				}
				d.eobrun = eob - 1
				break
			}
		}
	}
}

func (d *decoder) decodeACRefine(blk *[64]int16) {
	p1 := int32(1) << uint(d.al)
	m1 := int32(-1) << uint(d.al)
	t := &d.acTabs[d.scanComps[0].acTbl]
	k := d.ss
	refine := func(coef *int16) {
		if d.getBit() != 0 {
			if int32(*coef)&p1 == 0 {
				if *coef >= 0 {
					*coef = int16(int32(*coef) + p1)
				} else {
					*coef = int16(int32(*coef) + m1)
				}
			}
		}
	}
	if d.eobrun == 0 {
		for ; k <= d.se; k++ {
			s := d.decodeHuff(t)
			r := s >> 4
			s &= 15
			var nz int32
			if s != 0 {
				if s != 1 {
					d.warn("corrupt data: bad Huffman code")
				}
				if d.getBit() != 0 {
					nz = p1
				} else {
					nz = m1
				}
			} else if r != 15 {
				d.eobrun = 1 << uint(r)
				if r != 0 {
					d.eobrun += d.getBits(r)
				}
				break
			}
			for k <= d.se {
				coef := &blk[zigzag[k]]
				if *coef != 0 {
					refine(coef)
				} else {
					r--
					if r < 0 {
						break
					}
				}
				k++
			}
			if s != 0 {
				blk[zigzag[k]] = int16(nz)
			}
		}
	}
	if d.eobrun > 0 {
		for ; k <= d.se; k++ {
			coef := &blk[zigzag[k]]
			if *coef != 0 {
				refine(coef)
			}
		}
		d.eobrun--
	}
}

// One-pass (single-scan) files run the IDCT of each completed iMCU row on a
// second goroutine while entropy decoding continues, for large images.

const pipelineDepth = 6

type rowJob struct {
	imcu int
	bufs [][]int16
}

func (d *decoder) startPipeline() {
	if runtime.GOMAXPROCS(0) < 2 || d.width*d.height < 1<<18 {
		return
	}
	d.free = make(chan [][]int16, pipelineDepth)
	for i := 0; i < pipelineDepth; i++ {
		bufs := make([][]int16, d.ncomp)
		for ci := range d.comps {
			bufs[ci] = make([]int16, len(d.comps[ci].coef))
		}
		d.free <- bufs
	}
	d.jobs = make(chan rowJob, pipelineDepth)
	d.pipeDone = make(chan struct{})
	go func() {
		defer close(d.pipeDone)
		for j := range d.jobs {
			d.idctIMCURow(j.imcu, j.bufs)
			d.free <- j.bufs
		}
	}()
}

func (d *decoder) stopPipeline() {
	if d.jobs == nil {
		return
	}
	close(d.jobs)
	<-d.pipeDone
	d.jobs = nil
}

// beginRow provides zeroed coefficient buffers for the next iMCU row.
func (d *decoder) beginRow() {
	if d.jobs == nil {
		for i := range d.comps {
			clear(d.comps[i].coef)
		}
		return
	}
	bufs := <-d.free
	for i := range d.comps {
		clear(bufs[i])
		d.comps[i].coef = bufs[i]
	}
	d.curBufs = bufs
}

// endRow runs (or queues) the IDCT of a completed iMCU row.
func (d *decoder) endRow(imcu int) {
	if d.jobs == nil {
		bufs := make([][]int16, 0, maxComponents)
		for i := range d.comps {
			bufs = append(bufs, d.comps[i].coef)
		}
		d.idctIMCURow(imcu, bufs)
		return
	}
	d.jobs <- rowJob{imcu: imcu, bufs: d.curBufs}
}

func (d *decoder) idctIMCURow(imcu int, bufs [][]int16) {
	for i := range d.comps {
		c := &d.comps[i]
		for yi := 0; yi < c.v; yi++ {
			if by := imcu*c.v + yi; by < c.bh {
				d.idctBlockRow(c, bufs[i], yi, by)
			}
		}
	}
}
