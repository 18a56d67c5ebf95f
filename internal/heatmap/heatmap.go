// Package heatmap shows where in an image CLIP sees a text: the cosine
// similarity of every vision-transformer patch token (projected into the
// shared embedding space) to the text, overlaid on the image as colours.
package heatmap

import (
	"fmt"
	"image"
	"math"
)

// PatchSimilarity returns the grid×grid cosine similarities of the
// projected patch tokens of one image (Tokens×embed values, the class
// token first, as clip.ImagePatches.Projected holds them) to text.
func PatchSimilarity(projected []float32, grid, embed int, text []float32) ([]float32, error) {
	if len(text) != embed {
		return nil, fmt.Errorf("heatmap: text has %d values, the tokens have %d", len(text), embed)
	}
	if grid <= 0 || len(projected) != (grid*grid+1)*embed {
		return nil, fmt.Errorf("heatmap: %d token values for a %d×%d grid of %d-d tokens plus the class token", len(projected), grid, grid, embed)
	}
	var tt float64
	for _, v := range text {
		tt += float64(v) * float64(v)
	}
	out := make([]float32, grid*grid)
	for i := range out {
		tok := projected[(i+1)*embed : (i+2)*embed]
		var ab, aa float64
		for c, v := range tok {
			ab += float64(v) * float64(text[c])
			aa += float64(v) * float64(v)
		}
		if aa > 0 && tt > 0 {
			out[i] = float32(ab / math.Sqrt(aa*tt))
		}
	}
	return out, nil
}

// Overlay draws the grid×grid map sim over the S×S RGB image rgb (HWC
// bytes), scaled to side px: the map is stretched to its own min..max,
// upsampled bilinearly, coloured (dark blue → red → yellow) and blended
// with alpha over the image.
func Overlay(rgb []uint8, S int, sim []float32, grid, side int, alpha float64) (*image.RGBA, error) {
	if S <= 0 || len(rgb) != S*S*3 {
		return nil, fmt.Errorf("heatmap: %d bytes for a %d×%d RGB image", len(rgb), S, S)
	}
	if grid <= 0 || len(sim) != grid*grid {
		return nil, fmt.Errorf("heatmap: %d values for a %d×%d map", len(sim), grid, grid)
	}
	if side <= 0 {
		side = S
	}
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, v := range sim {
		lo, hi = min(lo, v), max(hi, v)
	}
	span := float64(hi - lo)
	img := image.NewRGBA(image.Rect(0, 0, side, side))
	for y := range side {
		for x := range side {
			// Image pixel (bilinear).
			px := bilinearRGB(rgb, S, (float64(x)+0.5)*float64(S)/float64(side)-0.5, (float64(y)+0.5)*float64(S)/float64(side)-0.5)
			// Map value (bilinear over cell centres).
			v := bilinear(sim, grid, (float64(x)+0.5)*float64(grid)/float64(side)-0.5, (float64(y)+0.5)*float64(grid)/float64(side)-0.5)
			t := 0.5
			if span > 0 {
				t = (v - float64(lo)) / span
			}
			c := colormap(t)
			o := img.Pix[(y*side+x)*4:]
			for k := range 3 {
				o[k] = uint8(math.Round((1-alpha)*px[k] + alpha*c[k]))
			}
			o[3] = 255
		}
	}
	return img, nil
}

func bilinear(m []float32, g int, x, y float64) float64 {
	x = min(max(x, 0), float64(g-1))
	y = min(max(y, 0), float64(g-1))
	x0, y0 := int(x), int(y)
	x1, y1 := min(x0+1, g-1), min(y0+1, g-1)
	fx, fy := x-float64(x0), y-float64(y0)
	a := float64(m[y0*g+x0])*(1-fx) + float64(m[y0*g+x1])*fx
	b := float64(m[y1*g+x0])*(1-fx) + float64(m[y1*g+x1])*fx
	return a*(1-fy) + b*fy
}

func bilinearRGB(rgb []uint8, S int, x, y float64) [3]float64 {
	x = min(max(x, 0), float64(S-1))
	y = min(max(y, 0), float64(S-1))
	x0, y0 := int(x), int(y)
	x1, y1 := min(x0+1, S-1), min(y0+1, S-1)
	fx, fy := x-float64(x0), y-float64(y0)
	var out [3]float64
	for c := range 3 {
		p := func(xx, yy int) float64 { return float64(rgb[(yy*S+xx)*3+c]) }
		a := p(x0, y0)*(1-fx) + p(x1, y0)*fx
		b := p(x0, y1)*(1-fx) + p(x1, y1)*fx
		out[c] = a*(1-fy) + b*fy
	}
	return out
}

// colormap maps t in [0, 1] to a dark-blue → purple → red → orange →
// yellow ramp (perceptually ordered, like "inferno").
func colormap(t float64) [3]float64 {
	stops := [][3]float64{{0, 0, 40}, {80, 20, 120}, {190, 40, 80}, {245, 120, 20}, {250, 240, 90}}
	t = min(max(t, 0), 1) * float64(len(stops)-1)
	i := min(int(t), len(stops)-2)
	f := t - float64(i)
	var c [3]float64
	for k := range 3 {
		c[k] = stops[i][k]*(1-f) + stops[i+1][k]*f
	}
	return c
}
