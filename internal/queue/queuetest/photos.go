package queuetest

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/goclip/goclip/internal/fixtures"
)

// PhotoTree copies the fixture images and writes n generated images (and
// one corrupt file) under a fresh folder; it returns the folder and every
// image path.
func PhotoTree(tb testing.TB, fixDir string, n int) (string, []string) {
	tb.Helper()
	root := tb.TempDir()
	var paths []string
	for _, im := range fixtures.ReadManifest(tb, fixDir).Images {
		data, err := os.ReadFile(filepath.Join(fixDir, im.File))
		if err != nil {
			tb.Fatal(err)
		}
		p := filepath.Join(root, "fixtures", filepath.Base(im.File))
		writeFile(tb, p, data)
		paths = append(paths, p)
	}
	for i := range n {
		p := filepath.Join(root, "gen", fmt.Sprintf("%02d", i%16), fmt.Sprintf("g%05d.png", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			tb.Fatal(err)
		}
		img := image.NewRGBA(image.Rect(0, 0, 8, 8))
		for y := range 8 {
			for x := range 8 {
				v := uint32(i)*2654435761 ^ uint32(x*40503+y*9973)
				img.Set(x, y, color.RGBA{byte(v), byte(v >> 8), byte(v >> 16), 255})
			}
		}
		if err := png.Encode(f, img); err != nil {
			tb.Fatal(err)
		}
		f.Close()
		paths = append(paths, p)
	}
	bad := filepath.Join(root, "broken.jpg")
	writeFile(tb, bad, []byte("not a jpeg"))
	paths = append(paths, bad)
	return root, paths
}

func writeFile(tb testing.TB, p string, data []byte) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}
