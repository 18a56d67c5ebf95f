// Command editdemo draws the test image of the README's editing strips, a
// hand-made "sun" (a yellow disc with orange rays on white), into the PNG
// file named by its argument.
package main

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
)

func main() {
	const n = 64
	img := image.NewRGBA(image.Rect(0, 0, n, n))
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			dx, dy := float64(x)-31.5, float64(y)-31.5
			r := math.Hypot(dx, dy)
			a := math.Atan2(dy, dx)
			c := color.RGBA{255, 255, 255, 255}
			switch {
			case r < 16:
				c = color.RGBA{255, 210, 40, 255}
			case r < 28 && math.Mod(a+math.Pi+0.2, math.Pi/4) < 0.35:
				c = color.RGBA{255, 140, 0, 255}
			}
			img.Set(x, y, c)
		}
	}
	f, _ := os.Create(os.Args[1])
	png.Encode(f, img)
	f.Close()
}
