package train

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/model"
	"github.com/goclip/goclip/internal/tokenizer"
)

// byteTokenizer returns a CLIP-style tokenizer with only the 512 byte
// symbols, one merge ("a"+"t</w>") and the two special tokens, so tests do
// not depend on the CLIP vocabulary file.
func byteTokenizer(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	table, order := tokenizer.BytesToUnicode()
	vocab := map[string]int{}
	for _, b := range order {
		vocab[string(table[b])] = len(vocab)
	}
	for _, b := range order {
		vocab[string(table[b])+"</w>"] = len(vocab)
	}
	vocab["at</w>"] = len(vocab)
	vocab["<|startoftext|>"] = len(vocab)
	vocab["<|endoftext|>"] = len(vocab)
	vj, _ := json.Marshal(vocab)
	tok, err := tokenizer.ParseHF(vj, []byte("#version: 0.2\na t</w>\n"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tinyConfig is a small ViT CLIP for fast tests.
func tinyConfig(vocab int) model.Config {
	return model.Config{EmbedDim: 16, QuickGELU: false, LayerNormEps: 1e-5,
		Vision: model.VisionConfig{ImageSize: 16, Width: 32, Heads: 2, Layers: 1, PatchSize: 8},
		Text:   model.TextConfig{ContextLength: 8, VocabSize: vocab, Width: 32, Heads: 2, Layers: 1}}
}

func tinyModel(t testing.TB, seed uint64) *model.Model {
	t.Helper()
	m, err := model.Random(tinyConfig(byteTokenizer(t).VocabSize()), seed)
	if err != nil {
		t.Fatal(err)
	}
	InitWeights(m, seed) // model.Random's draw order is not fixed
	return m
}

var shapeNames = []string{"red", "green", "blue", "cat", "bat", "hat", "sun", "dot"}

// writeImages writes n small PNGs with distinct colours and a CSV listing
// them, and returns the CSV path.
func writeImages(t testing.TB, dir string, n int) string {
	t.Helper()
	var csv strings.Builder
	csv.WriteString("filepath,caption\n")
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, 20, 18))
		c := color.RGBA{uint8(37 * i), uint8(255 - 29*i), uint8(90 * (i % 3)), 255}
		for y := range 18 {
			for x := range 20 {
				if (x/(1+i%4)+y)%2 == 0 {
					img.Set(x, y, c)
				} else {
					img.Set(x, y, color.RGBA{uint8(i * 11), 20, 200, 255})
				}
			}
		}
		name := fmt.Sprintf("img%02d.png", i)
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
		fmt.Fprintf(&csv, "%s,a %s thing %d\n", name, shapeNames[i%len(shapeNames)], i)
	}
	p := filepath.Join(dir, "train.csv")
	if err := os.WriteFile(p, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
