package edit

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/builtin"
	"github.com/goclip/goclip/internal/imageproc"
)

// emojiCases are the documented edits of the evaluation: the emoji image
// of the first name (Google style, from the training set) edited toward
// the second name.
var emojiCases = [][2]string{
	{"grinning face", "cat face"}, {"cat face", "tiger face"}, {"dog face", "panda"}, {"pig face", "frog"},
	{"red apple", "cherries"}, {"banana", "pizza"}, {"pizza", "hamburger"}, {"watermelon", "red heart"},
	{"sun", "snowflake"}, {"cloud", "rainbow"}, {"snowman", "fire"}, {"rocket", "automobile"},
	{"bicycle", "rocket"}, {"house", "deciduous tree"}, {"rose", "four leaf clover"}, {"fish", "penguin"},
	{"lion", "unicorn"}, {"butterfly", "star"}, {"light bulb", "sun"}, {"guitar", "crown"},
}

// Edit evaluation bounds (documented in the package report).
const (
	evalStrength     = 0.25
	evalMeanChangeMx = 0.25 // mean |Δ| per channel on the 0..1 scale
)

func readRows(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("emoji data: %v (run scripts/emoji/run.sh or set GOCLIP_DATA)", err)
	}
	defer f.Close()
	r, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r[1:]
}

// TestEmojiEditEval is the acceptance experiment: on the built-in emoji
// model, each of the 20 cases edits an emoji toward another concept's name
// and measures that name's zero-shot rank among all the dataset's English
// names before and after. It runs only with GOCLIP_EDIT_EVAL=1 (about a
// minute); GOCLIP_EDIT_MODEL overrides the model.
func TestEmojiEditEval(t *testing.T) {
	if os.Getenv("GOCLIP_EDIT_EVAL") == "" {
		t.Skip("set GOCLIP_EDIT_EVAL=1 to run the emoji editing evaluation")
	}
	data := os.Getenv("GOCLIP_DATA")
	if data == "" {
		home, _ := os.UserHomeDir()
		data = filepath.Join(home, ".cache", "goclip", "emoji")
	}
	modelPath := os.Getenv("GOCLIP_EDIT_MODEL")
	if modelPath == "" {
		var err error
		if modelPath, err = builtin.Dir(t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	m, err := clip.Load(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var names []string
	for _, r := range readRows(t, filepath.Join(data, "names.csv")) {
		names = append(names, r[1])
	}
	imageOf := map[string]string{}
	for _, r := range readRows(t, filepath.Join(data, "train.csv")) {
		if _, ok := imageOf[r[1]]; !ok {
			imageOf[r[1]] = r[0]
		}
	}
	nameEmb, err := m.EncodeTexts(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	index := map[string]int{}
	for i, n := range names {
		if _, ok := index[n]; !ok {
			index[n] = i
		}
	}
	rankOf := func(img []float32, target int) int {
		s := clip.Similarity(img, nameEmb[target])
		r := 0
		for j, e := range nameEmb {
			if j != target && clip.Similarity(img, e) > s {
				r++
			}
		}
		return r + 1
	}
	ed, err := New(m.Network(), m.PreprocessOptions())
	if err != nil {
		t.Fatal(err)
	}
	// GOCLIP_EDIT_NEGATIVES=1 passes every other name as a negative
	// (classification cross-entropy); by default the plain cosine.
	useNeg := os.Getenv("GOCLIP_EDIT_NEGATIVES") != ""
	out := os.Getenv("GOCLIP_EDIT_OUT") // optional: keep the strips here
	var ok, total int
	var meanChange float64
	var times []time.Duration
	t.Logf("model %s, %d names, strength %.2f, negatives %v", modelPath, len(names), evalStrength, useNeg)
	t.Logf("| source | target | rank before | rank after | cos before | cos after | mean |Δ| | time |")
	for ci, c := range emojiCases {
		src, ok1 := imageOf[c[0]]
		ti, ok2 := index[c[1]]
		if !ok1 || !ok2 {
			t.Fatalf("case %q → %q: not in the dataset", c[0], c[1])
		}
		img, err := imageproc.LoadFile(src, m.PreprocessOptions())
		if err != nil {
			t.Fatal(err)
		}
		crop, err := imageproc.CropRGB(img, m.PreprocessOptions())
		if err != nil {
			t.Fatal(err)
		}
		pix := make([]float32, len(crop))
		imageproc.Normalize(pix, crop, m.PreprocessOptions())
		f0, err := m.EncodePixels(ctx, pix, 1)
		if err != nil {
			t.Fatal(err)
		}
		var negatives [][]float32
		if useNeg {
			for j, e := range nameEmb {
				if names[j] != c[1] {
					negatives = append(negatives, e)
				}
			}
		}
		res, err := ed.Edit(ctx, crop, nameEmb[ti], Options{Strength: evalStrength, Seed: uint64(ci), Negatives: negatives})
		if err != nil {
			t.Fatal(err)
		}
		// Score the saved 8-bit result through the full preprocessing.
		rgb := make([]uint8, len(crop))
		for i := range len(crop) / 3 {
			copy(rgb[3*i:3*i+3], res.Image.Pix[4*i:4*i+3])
		}
		imageproc.Normalize(pix, rgb, m.PreprocessOptions())
		f1, err := m.EncodePixels(ctx, pix, 1)
		if err != nil {
			t.Fatal(err)
		}
		r0, r1 := rankOf(f0[0], ti), rankOf(f1[0], ti)
		total++
		if r1 <= 5 {
			ok++
		}
		meanChange += res.MeanAbsChange
		times = append(times, res.Duration)
		t.Logf("| %s | %s | %d | %d | %.3f | %.3f | %.4f | %v |", c[0], c[1], r0, r1,
			clip.Similarity(f0[0], nameEmb[ti]), clip.Similarity(f1[0], nameEmb[ti]), res.MeanAbsChange, res.Duration.Round(time.Millisecond))
		if res.MeanAbsChange > evalMeanChangeMx {
			t.Errorf("%s → %s: mean |Δ| %.4f above the bound %.2f", c[0], c[1], res.MeanAbsChange, evalMeanChangeMx)
		}
		if out != "" {
			if err := SavePNG(filepath.Join(out, strconv.Itoa(ci)+"-"+sanitize(c[0])+"-to-"+sanitize(c[1])+".png"), Strip(res.Frames, 2)); err != nil {
				t.Error(err)
			}
		}
	}
	sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
	t.Logf("target in the top 5 for %d/%d cases (%.0f%%); mean |Δ| %.4f; time per edit median %v, max %v",
		ok, total, 100*float64(ok)/float64(total), meanChange/float64(total), times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
	if 5*ok < 4*total {
		t.Errorf("only %d of %d edits reached the top 5 (want ≥ 80%%)", ok, total)
	}
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}
