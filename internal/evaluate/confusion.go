package evaluate

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
)

// ConfusionImage draws a confusion matrix (rows = true class, columns =
// predicted class) as square cells, shaded from white (0) to dark blue
// (the whole row), with a thin grey border. cell is the side of a cell in
// pixels (0 picks one that keeps the image near 800 px, between 2 and 32).
func ConfusionImage(conf [][]int, cell int) (*image.RGBA, error) {
	n := len(conf)
	if n == 0 {
		return nil, errors.New("evaluate: empty confusion matrix")
	}
	for i, row := range conf {
		if len(row) != n {
			return nil, fmt.Errorf("evaluate: confusion row %d has %d columns, want %d", i, len(row), n)
		}
	}
	if cell <= 0 {
		cell = min(32, max(2, 800/n))
	}
	if n*cell > 16384 {
		cell = max(1, 16384/n)
	}
	const border = 1
	side := n*cell + 2*border
	img := image.NewRGBA(image.Rect(0, 0, side, side))
	grey := color.RGBA{160, 160, 160, 255}
	for y := range side {
		for x := range side {
			img.SetRGBA(x, y, grey)
		}
	}
	for t, row := range conf {
		total := 0
		for _, v := range row {
			total += v
		}
		for p, v := range row {
			f := 0.0
			if total > 0 {
				f = float64(v) / float64(total)
			}
			// White → (8, 48, 107), the dark end of a "Blues" ramp.
			c := color.RGBA{lerp(255, 8, f), lerp(255, 48, f), lerp(255, 107, f), 255}
			x0, y0 := border+p*cell, border+t*cell
			for y := y0; y < y0+cell; y++ {
				for x := x0; x < x0+cell; x++ {
					img.SetRGBA(x, y, c)
				}
			}
		}
	}
	return img, nil
}

func lerp(a, b uint8, f float64) uint8 {
	return uint8(float64(a) + (float64(b)-float64(a))*f + 0.5)
}

// WriteConfusionPNG encodes ConfusionImage(conf, cell) as PNG to w.
func WriteConfusionPNG(w io.Writer, conf [][]int, cell int) error {
	img, err := ConfusionImage(conf, cell)
	if err != nil {
		return err
	}
	return png.Encode(w, img)
}

// SaveConfusionPNG writes the confusion-matrix PNG to path.
func SaveConfusionPNG(path string, conf [][]int, cell int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteConfusionPNG(f, conf, cell); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
