// Command evaluate measures a CLIP model on the held-out emoji concepts in
// the held-out (twitter) style built by scripts/emoji/prepare: zero-shot
// top-1/top-5 accuracy over the candidate names and text→image
// recall@1/5/10, in English and Chinese, next to chance and a bag-of-words
// baseline (defined in docs/training.md and in baseline below).
//
// Usage: go run ./scripts/emoji/evaluate -model DIR -data DIR
package main

import (
	"context"
	"encoding/csv"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/imageproc"
)

type testItem struct{ path, en, zh string }

func readCSV(path string) [][]string {
	f, err := os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	r, err := csv.NewReader(f).ReadAll()
	if err != nil {
		log.Fatalf("%s: %v", path, err)
	}
	return r[1:]
}

func main() {
	modelPath := flag.String("model", "", "model to evaluate (default: goclip's built-in model is not implied; give a path)")
	data := flag.String("data", filepath.Join(os.Getenv("HOME"), ".cache/goclip/emoji"), "directory with test.csv, names.csv and train.csv")
	flag.Parse()
	ctx := context.Background()
	var tests []testItem
	for _, r := range readCSV(filepath.Join(*data, "test.csv")) {
		tests = append(tests, testItem{r[0], r[1], r[2]})
	}
	var allEN, allZH []string
	for _, r := range readCSV(filepath.Join(*data, "names.csv")) {
		allEN, allZH = append(allEN, r[1]), append(allZH, r[2])
	}
	paths := make([]string, len(tests))
	for i, t := range tests {
		paths[i] = t.path
	}
	fmt.Printf("%d held-out concepts (twitter style); %d names in all\n\n", len(tests), len(allEN))
	fmt.Println("| method | lang | top-1 | top-5 | top-1 (all names) | top-5 (all names) | R@1 | R@5 | R@10 |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|")
	n := float64(len(tests))
	fmt.Printf("| chance | — | %.1f | %.1f | %.2f | %.2f | %.1f | %.1f | %.1f |\n", 100/n, 500/n,
		100/float64(len(allEN)), 500/float64(len(allEN)), 100/n, 500/n, 1000/n)

	bow := newBaseline(*data, tests)
	for _, lang := range []string{"en", "zh"} {
		names, all := namesOf(tests, lang), allEN
		if lang == "zh" {
			all = allZH
		}
		report("bag of words", lang, bow.scores(names, lang), bow.scores(all, lang), all, names)
	}
	if *modelPath != "" {
		m, err := clip.Load(*modelPath)
		if err != nil {
			log.Fatal(err)
		}
		imgs, err := m.EncodeImageFiles(ctx, paths)
		if err != nil {
			log.Fatal(err)
		}
		for i := range imgs {
			imgs[i] = clip.Normalize(imgs[i])
		}
		for _, lang := range []string{"en", "zh"} {
			names, all := namesOf(tests, lang), allEN
			if lang == "zh" {
				all = allZH
			}
			report("goclip model", lang, clipScores(ctx, m, imgs, names), clipScores(ctx, m, imgs, all), all, names)
		}
	}
}

func namesOf(tests []testItem, lang string) []string {
	var out []string
	for _, t := range tests {
		if lang == "en" {
			out = append(out, t.en)
		} else {
			out = append(out, t.zh)
		}
	}
	return out
}

// clipScores returns cosine similarities [image][candidate].
func clipScores(ctx context.Context, m *clip.Model, imgs [][]float32, cands []string) [][]float32 {
	txt, err := m.EncodeTexts(ctx, cands)
	if err != nil {
		log.Fatal(err)
	}
	for i := range txt {
		txt[i] = clip.Normalize(txt[i])
	}
	s := make([][]float32, len(imgs))
	for i, v := range imgs {
		s[i] = make([]float32, len(txt))
		for j, t := range txt {
			s[i][j] = clip.Similarity(v, t)
		}
	}
	return s
}

// report prints one row. heldOut[i] is image i's true name; scores are
// [image][candidate] over heldOut (which is in image order) and over all.
func report(method, lang string, s, sAll [][]float32, all, heldOut []string) {
	idxAll := map[string]int{}
	for j, n := range all {
		if _, ok := idxAll[n]; !ok {
			idxAll[n] = j
		}
	}
	var t1, t5, a1, a5 int
	for i := range s {
		r := rank(s[i], i)
		t1 += b(r < 1)
		t5 += b(r < 5)
		ra := rank(sAll[i], idxAll[heldOut[i]])
		a1 += b(ra < 1)
		a5 += b(ra < 5)
	}
	// text→image: column i of s, the true image is i.
	var r1, r5, r10 int
	for j := range heldOut {
		col := make([]float32, len(s))
		for i := range s {
			col[i] = s[i][j]
		}
		r := rank(col, j)
		r1 += b(r < 1)
		r5 += b(r < 5)
		r10 += b(r < 10)
	}
	n := float64(len(s))
	p := func(k int) float64 { return 100 * float64(k) / n }
	fmt.Printf("| %s | %s | %.1f | %.1f | %.2f | %.2f | %.1f | %.1f | %.1f |\n", method, lang, p(t1), p(t5), p(a1), p(a5), p(r1), p(r5), p(r10))
}

// rank is the number of entries scoring above the true one, plus the
// number of equal entries before it (ties are broken by position).
func rank(row []float32, truth int) int {
	r := 0
	for j, v := range row {
		if v > row[truth] || (v == row[truth] && j < truth) {
			r++
		}
	}
	return r
}

func b(ok bool) int {
	if ok {
		return 1
	}
	return 0
}

// baseline is the bag-of-words nearest-neighbour baseline: a test image's
// five nearest training images (cosine similarity of 16×16 RGB
// thumbnails) contribute the words of their captions to a bag (English
// words split on non-letters; Chinese by character); a candidate name
// scores the fraction of its words found in the bag, weighted by their
// counts there. It uses no learning, only the training captions.
type baseline struct {
	testVec    [][]float32
	trainVec   [][]float32
	trainWords []map[string]int // per training image, per language key "en:"/"zh:"
}

func thumb(path string) []float32 {
	img, err := imageproc.LoadFile(path, imageproc.Options{})
	if err != nil {
		log.Fatal(err)
	}
	o := imageproc.DefaultOptions(16)
	o.ResizeWidth, o.ResizeHeight = 16, 16
	o.Interpolation = "box"
	v := make([]float32, 3*16*16)
	if err := imageproc.PreprocessInto(v, img, o); err != nil {
		log.Fatal(err)
	}
	return clip.Normalize(v)
}

func words(s, lang string) []string {
	s = strings.ToLower(s)
	if lang == "zh" {
		var out []string
		for _, r := range s {
			if unicode.Is(unicode.Han, r) {
				out = append(out, string(r))
			}
		}
		return out
	}
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

func newBaseline(data string, tests []testItem) *baseline {
	bl := &baseline{}
	byPath := map[string]int{}
	for _, r := range readCSV(filepath.Join(data, "train.csv")) {
		i, ok := byPath[r[0]]
		if !ok {
			i = len(bl.trainVec)
			byPath[r[0]] = i
			bl.trainVec = append(bl.trainVec, thumb(r[0]))
			bl.trainWords = append(bl.trainWords, map[string]int{})
		}
		for _, lang := range []string{"en", "zh"} {
			for _, w := range words(r[1], lang) {
				bl.trainWords[i][lang+":"+w]++
			}
		}
	}
	for _, t := range tests {
		bl.testVec = append(bl.testVec, thumb(t.path))
	}
	return bl
}

func (bl *baseline) scores(cands []string, lang string) [][]float32 {
	out := make([][]float32, len(bl.testVec))
	for i, v := range bl.testVec {
		type nb struct {
			j int
			s float32
		}
		var nbs []nb
		for j, u := range bl.trainVec {
			nbs = append(nbs, nb{j, clip.Similarity(v, u)})
		}
		sort.Slice(nbs, func(a, c int) bool { return nbs[a].s > nbs[c].s })
		bag := map[string]int{}
		for _, x := range nbs[:5] {
			for w, c := range bl.trainWords[x.j] {
				if strings.HasPrefix(w, lang+":") {
					bag[w] += c
				}
			}
		}
		out[i] = make([]float32, len(cands))
		for c, name := range cands {
			ws := words(name, lang)
			if len(ws) == 0 {
				continue
			}
			var s float32
			for _, w := range ws {
				s += float32(bag[lang+":"+w])
			}
			out[i][c] = s / float32(len(ws))
		}
	}
	return out
}
