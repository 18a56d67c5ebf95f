package jpeg

import (
	"image"
	"runtime"
	"sync"
)

// Upsampling methods, chosen per component as jdsample.c jinit_upsampler
// does with fancy upsampling enabled.
const (
	upFull = iota
	upH2V1Fancy
	upH1V2Fancy
	upH2V2Fancy
	upInt // box replication by hexp x vexp (also libjpeg's h2v1/h2v2 box)
)

func (d *decoder) upMethod(c *component) (m, hexp, vexp int) {
	switch {
	case c.h == d.maxH && c.v == d.maxV:
		return upFull, 1, 1
	case c.h*2 == d.maxH && c.v == d.maxV:
		if c.dsW > 2 {
			return upH2V1Fancy, 2, 1
		}
		return upInt, 2, 1
	case c.h == d.maxH && c.v*2 == d.maxV:
		return upH1V2Fancy, 1, 2
	case c.h*2 == d.maxH && c.v*2 == d.maxV:
		if c.dsW > 2 {
			return upH2V2Fancy, 2, 2
		}
		return upInt, 2, 2
	default:
		return upInt, d.maxH / c.h, d.maxV / c.v
	}
}

// YCbCr to RGB tables of jdcolor.c (16 fractional bits).
var crR, cbB [256]int32
var crG, cbG [256]int64

func init() {
	fix := func(x float64) int64 { return int64(x*65536 + 0.5) }
	const half = 1 << 15
	for i := 0; i < 256; i++ {
		x := int64(i - 128)
		crR[i] = int32((fix(1.40200)*x + half) >> 16)
		cbB[i] = int32((fix(1.77200)*x + half) >> 16)
		crG[i] = -fix(0.71414) * x
		cbG[i] = -fix(0.34414)*x + half
	}
}

func clamp255(v int32) byte {
	if uint32(v) > 255 {
		if v < 0 {
			return 0
		}
		return 255
	}
	return byte(v)
}

// rowSource produces upsampled component rows.
type rowSource struct {
	c          *component
	m          int
	hexp, vexp int
	buf        []byte
	colsum     []int32
}

// row returns the upsampled samples of output row y (at least width long).
func (s *rowSource) row(y, width int) []byte {
	c := s.c
	pw := c.planeW
	switch s.m {
	case upFull:
		return c.plane[y*pw : y*pw+width]
	case upH2V1Fancy:
		in := c.plane[y*pw : y*pw+c.dsW]
		out := s.buf
		n := len(in)
		out[0] = in[0]
		out[1] = byte((int(in[0])*3 + int(in[1]) + 2) >> 2)
		for j := 1; j < n-1; j++ {
			v := int(in[j]) * 3
			out[2*j] = byte((v + int(in[j-1]) + 1) >> 2)
			out[2*j+1] = byte((v + int(in[j+1]) + 2) >> 2)
		}
		out[2*n-2] = byte((int(in[n-1])*3 + int(in[n-2]) + 1) >> 2)
		out[2*n-1] = in[n-1]
		return out
	case upH1V2Fancy:
		r := y >> 1
		nb, bias := r-1, 1
		if y&1 != 0 {
			nb, bias = r+1, 2
		}
		nb = min(max(nb, 0), c.dsH-1)
		a := c.plane[r*pw : r*pw+c.dsW]
		b := c.plane[nb*pw : nb*pw+c.dsW]
		out := s.buf[:c.dsW]
		for x := range out {
			out[x] = byte((int(a[x])*3 + int(b[x]) + bias) >> 2)
		}
		return out
	case upH2V2Fancy:
		r := y >> 1
		nb := r - 1
		if y&1 != 0 {
			nb = r + 1
		}
		nb = min(max(nb, 0), c.dsH-1)
		n := c.dsW
		a := c.plane[r*pw : r*pw+n]
		b := c.plane[nb*pw : nb*pw+n]
		cs := s.colsum[:n]
		for x := range cs {
			cs[x] = int32(a[x])*3 + int32(b[x])
		}
		out := s.buf
		out[0] = byte((cs[0]*4 + 8) >> 4)
		out[1] = byte((cs[0]*3 + cs[1] + 7) >> 4)
		for j := 1; j < n-1; j++ {
			v := cs[j] * 3
			out[2*j] = byte((v + cs[j-1] + 8) >> 4)
			out[2*j+1] = byte((v + cs[j+1] + 7) >> 4)
		}
		out[2*n-2] = byte((cs[n-1]*3 + cs[n-2] + 8) >> 4)
		out[2*n-1] = byte((cs[n-1]*4 + 7) >> 4)
		return out
	default:
		r := y / s.vexp
		in := c.plane[r*pw:]
		out := s.buf[:width]
		if s.hexp == 1 {
			copy(out, in[:width])
			return out
		}
		for x := range out {
			out[x] = in[x/s.hexp]
		}
		return out
	}
}

func (d *decoder) newRowSources() []rowSource {
	srcs := make([]rowSource, d.ncomp)
	for i := range d.comps {
		c := &d.comps[i]
		m, h, v := d.upMethod(c)
		srcs[i] = rowSource{c: c, m: m, hexp: h, vexp: v}
		if m != upFull {
			srcs[i].buf = make([]byte, max(d.width, c.dsW*h)+16)
		}
		if m == upH2V2Fancy {
			srcs[i].colsum = make([]int32, c.dsW)
		}
	}
	return srcs
}

// convert upsamples and colour-converts the component planes into the
// output image, in parallel bands of rows for large images.
func (d *decoder) convert() image.Image {
	w, h := d.width, d.height
	r := image.Rect(0, 0, w, h)
	var img image.Image
	var pix []byte
	var stride int
	switch d.colorSpace {
	case csGray:
		g := image.NewGray(r)
		img, pix, stride = g, g.Pix, g.Stride
	case csCMYK, csYCCK:
		c := image.NewCMYK(r)
		img, pix, stride = c, c.Pix, c.Stride
	default:
		c := image.NewRGBA(r)
		img, pix, stride = c, c.Pix, c.Stride
	}
	workers := 1
	if w*h >= 1<<18 {
		workers = min(runtime.GOMAXPROCS(0), 8, h/16+1)
	}
	if workers <= 1 {
		d.convertRows(0, h, pix, stride)
		return img
	}
	var wg sync.WaitGroup
	per := (h + workers - 1) / workers
	for y0 := 0; y0 < h; y0 += per {
		y1 := min(y0+per, h)
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.convertRows(y0, y1, pix, stride)
		}()
	}
	wg.Wait()
	return img
}

func (d *decoder) convertRows(y0, y1 int, pix []byte, stride int) {
	w := d.width
	srcs := d.newRowSources()
	for y := y0; y < y1; y++ {
		if d.colorSpace == csGray {
			copy(pix[y*stride:y*stride+w], srcs[0].row(y, w))
			continue
		}
		out := pix[y*stride : y*stride+w*4]
		switch d.colorSpace {
		case csYCbCr:
			yr := srcs[0].row(y, w)[:w]
			cb := srcs[1].row(y, w)[:w]
			cr := srcs[2].row(y, w)[:w]
			for x := 0; x < w; x++ {
				yy := int32(yr[x])
				b, rr := cb[x], cr[x]
				o := out[4*x : 4*x+4 : 4*x+4]
				o[0] = clamp255(yy + crR[rr])
				o[1] = clamp255(yy + int32((cbG[b]+crG[rr])>>16))
				o[2] = clamp255(yy + cbB[b])
				o[3] = 255
			}
		case csRGB:
			rr := srcs[0].row(y, w)[:w]
			gg := srcs[1].row(y, w)[:w]
			bb := srcs[2].row(y, w)[:w]
			for x := 0; x < w; x++ {
				o := out[4*x : 4*x+4 : 4*x+4]
				o[0], o[1], o[2], o[3] = rr[x], gg[x], bb[x], 255
			}
		case csCMYK:
			c0 := srcs[0].row(y, w)[:w]
			c1 := srcs[1].row(y, w)[:w]
			c2 := srcs[2].row(y, w)[:w]
			c3 := srcs[3].row(y, w)[:w]
			for x := 0; x < w; x++ {
				o := out[4*x : 4*x+4 : 4*x+4]
				o[0], o[1], o[2], o[3] = 255-c0[x], 255-c1[x], 255-c2[x], 255-c3[x]
			}
		case csYCCK:
			yr := srcs[0].row(y, w)[:w]
			cb := srcs[1].row(y, w)[:w]
			cr := srcs[2].row(y, w)[:w]
			k := srcs[3].row(y, w)[:w]
			for x := 0; x < w; x++ {
				// libjpeg's YCCK->CMYK gives C = 255-R etc.; Pillow then
				// inverts, which leaves R, G, B and 255-K.
				yy := int32(yr[x])
				b, rr := cb[x], cr[x]
				o := out[4*x : 4*x+4 : 4*x+4]
				o[0] = clamp255(yy + crR[rr])
				o[1] = clamp255(yy + int32((cbG[b]+crG[rr])>>16))
				o[2] = clamp255(yy + cbB[b])
				o[3] = 255 - k[x]
			}
		}
	}
}
