package train

import (
	"bufio"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// PlotLoss draws the loss curve of log (raw losses in light blue, a moving
// average in dark blue) as a PNG at path.
func PlotLoss(path string, log []StepLog) error {
	const W, H, left, right, top, bottom = 800, 450, 60, 20, 30, 40
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	if len(log) == 0 {
		return savePNG(path, img)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, l := range log {
		if !math.IsNaN(l.Loss) && !math.IsInf(l.Loss, 0) {
			lo, hi = math.Min(lo, l.Loss), math.Max(hi, l.Loss)
		}
	}
	if !(hi > lo) {
		hi = lo + 1
	}
	lo = math.Max(0, lo-0.05*(hi-lo))
	first, last := float64(log[0].Step), float64(log[len(log)-1].Step)
	if last == first {
		last = first + 1
	}
	px := func(step float64) int { return left + int((step-first)/(last-first)*float64(W-left-right)) }
	py := func(v float64) int { return H - bottom - int((v-lo)/(hi-lo)*float64(H-top-bottom)) }
	axis := color.RGBA{120, 120, 120, 255}
	line(img, left, H-bottom, W-right, H-bottom, axis)
	line(img, left, top, left, H-bottom, axis)
	raw := color.RGBA{170, 200, 240, 255}
	avg := color.RGBA{20, 60, 160, 255}
	win := max(1, len(log)/50)
	var sum float64
	prevX, prevY, pavgX, pavgY := -1, -1, -1, -1
	for i, l := range log {
		x := px(float64(l.Step))
		y := py(l.Loss)
		if prevX >= 0 {
			line(img, prevX, prevY, x, y, raw)
		}
		prevX, prevY = x, y
		sum += l.Loss
		if i >= win {
			sum -= log[i-win].Loss
		}
		ay := py(sum / float64(min(i+1, win)))
		if pavgX >= 0 {
			line(img, pavgX, pavgY, x, ay, avg)
		}
		pavgX, pavgY = x, ay
	}
	text(img, left, 18, fmt.Sprintf("training loss (moving average over %d steps)", win))
	text(img, 4, top+4, fmt.Sprintf("%.3g", hi))
	text(img, 4, H-bottom, fmt.Sprintf("%.3g", lo))
	text(img, left, H-bottom+18, fmt.Sprintf("step %d", log[0].Step))
	text(img, W-right-90, H-bottom+18, fmt.Sprintf("step %d", log[len(log)-1].Step))
	return savePNG(path, img)
}

func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.Set(x0, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

func text(img *image.RGBA, x, y int, s string) {
	d := font.Drawer{Dst: img, Src: image.Black, Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func savePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if err := png.Encode(w, img); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
