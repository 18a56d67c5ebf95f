package evaluate

import (
	"bytes"
	"image/png"
	"math"
	"reflect"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestRank(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		s    []float32
		c    int
		want int
	}{
		{[]float32{1, 3, 2}, 1, 0},
		{[]float32{1, 3, 2}, 0, 2},
		{[]float32{2, 2, 2}, 0, 0}, // ties: lower index first
		{[]float32{2, 2, 2}, 2, 2},
		{[]float32{nan, 1, 0}, 0, 2},
		{[]float32{nan, 1, 0}, 2, 1},
	} {
		if got := Rank(tc.s, tc.c); got != tc.want {
			t.Errorf("Rank(%v, %d) = %d, want %d", tc.s, tc.c, got, tc.want)
		}
	}
	if Argmax([]float32{1, 5, 5}) != 1 || Argmax(nil) != -1 {
		t.Error("Argmax")
	}
}

func TestClassification(t *testing.T) {
	classes := []string{"a", "b", "c", "d", "e", "f", "empty"}
	scores := [][]float32{
		// true a: correct
		{9, 1, 1, 1, 1, 1, 1},
		// true a: predicted b, a ranks 2nd
		{5, 6, 0, 0, 0, 0, 0},
		// true b: tie with a at the top → a wins the tie (lower index):
		// wrong at top-1, rank 1
		{7, 7, 0, 0, 0, 0, 0},
		// true c: ranks 6th (five higher) → miss at top-5
		{6, 5, 1, 4, 3, 2, 0},
		// true c: correct
		{0, 0, 3, 0, 0, 0, 0},
		// true c: ranks 5th (index 4) → top-5 hit
		{6, 5, 1, 4, 3, 0, 0},
	}
	truth := []int{0, 0, 1, 2, 2, 2}
	m, err := Classification(scores, truth, classes)
	if err != nil {
		t.Fatal(err)
	}
	// top-1 hits: rows 0, 4 → 2/6; top-5: all but row 3 → 5/6.
	if !near(m.Acc1, 2.0/6) || !near(m.Acc5, 5.0/6) {
		t.Errorf("acc1 %v acc5 %v", m.Acc1, m.Acc5)
	}
	// recalls: a 1/2, b 0/1, c 1/3; d, e, f, empty have no images.
	if want := (0.5 + 0 + 1.0/3) / 3; !near(m.MeanPerClassRecall, want) {
		t.Errorf("mean per-class recall %v, want %v", m.MeanPerClassRecall, want)
	}
	if m.PerClass[6].Images != 0 || m.PerClass[6].Recall != 0 || m.PerClass[2].Correct != 1 || m.PerClass[2].Images != 3 {
		t.Errorf("per class %+v", m.PerClass)
	}
	wantConf := map[[2]int]int{{0, 0}: 1, {0, 1}: 1, {1, 0}: 1, {2, 0}: 2, {2, 2}: 1}
	for tr, row := range m.Confusion {
		for p, v := range row {
			if v != wantConf[[2]int{tr, p}] {
				t.Errorf("confusion[%d][%d] = %d", tr, p, v)
			}
		}
	}
	// Fewer than five classes: acc@5 caps k at the class count.
	m2, _ := Classification([][]float32{{0, 1}}, []int{0}, []string{"x", "y"})
	if m2.Acc1 != 0 || m2.Acc5 != 1 {
		t.Errorf("two classes: acc1 %v acc5 %v", m2.Acc1, m2.Acc5)
	}
	for _, bad := range []struct {
		s [][]float32
		y []int
	}{
		{[][]float32{{1, 2}}, []int{0, 1}},
		{[][]float32{{1}}, []int{0}},
		{[][]float32{{1, 2}}, []int{2}},
	} {
		if _, err := Classification(bad.s, bad.y, []string{"x", "y"}); err == nil {
			t.Errorf("%v %v: no error", bad.s, bad.y)
		}
	}
}

func TestRetrieval(t *testing.T) {
	// Image 0 has five captions, image 1 one, image 2 none.
	images := [][]float32{{1, 0}, {0, 1}, {-1, 0}}
	texts := [][]float32{
		{1, 0.1},   // img0: closest to img0 → rank 0
		{0, 1},     // img0: closest to img1 → img0 ranks 1 (cos 0 ties img2? no: img2 cos 0 too)
		{-1, 0.01}, // img0: closest to img2 → img0 ranks 2
		{1, 1},     // img0: ties img0/img1 (cos equal) → index 0 first → rank 0
		{0.2, 1},   // img0: img1 first → rank 1
		{0.3, 1},   // img1: rank 0
	}
	owner := []int{0, 0, 0, 0, 0, 1}
	m, err := Retrieval(images, texts, owner, []int{1, 2, 5})
	if err != nil {
		t.Fatal(err)
	}
	// text → image ranks: 0, 1 (img1 1.0 > img0 0 = img2 0, tie → img0), 2, 0, 1, 0
	if !near(m["image_retrieval_recall@1"], 3.0/6) || !near(m["image_retrieval_recall@2"], 5.0/6) || !near(m["image_retrieval_recall@5"], 1) {
		t.Errorf("image retrieval %v", m)
	}
	// image → text: img0's best caption ranks 0 (caption 0); img1: captions by
	// cos to (0,1): c1 1.0, c5 .958, c4 .98 ... c1 (owned by img0) first, c4
	// 0.98 second, c5 third → rank 2; img2 has no captions and is not counted.
	if !near(m["text_retrieval_recall@1"], 0.5) || !near(m["text_retrieval_recall@2"], 0.5) || !near(m["text_retrieval_recall@5"], 1) {
		t.Errorf("text retrieval %v", m)
	}
	if _, err := Retrieval(images, texts, owner[:2], []int{1}); err == nil {
		t.Error("mismatched links: no error")
	}
	if _, err := Retrieval(images, texts[:1], []int{3}, []int{1}); err == nil {
		t.Error("caption of a missing image: no error")
	}
}

func TestConfusionPNG(t *testing.T) {
	conf := [][]int{{3, 1}, {0, 0}}
	var b bytes.Buffer
	if err := WriteConfusionPNG(&b, conf, 4); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if sz := img.Bounds().Size(); sz.X != 10 || sz.Y != 10 {
		t.Fatalf("size %v", sz)
	}
	px := func(x, y int) [3]uint32 {
		r, g, bb, _ := img.At(x, y).RGBA()
		return [3]uint32{r >> 8, g >> 8, bb >> 8}
	}
	if got := px(2, 2); got != [3]uint32{lerpU(255, 8, .75), lerpU(255, 48, .75), lerpU(255, 107, .75)} {
		t.Errorf("cell (0,0) colour %v", got)
	}
	if got := px(8, 8); got != [3]uint32{255, 255, 255} {
		t.Errorf("empty row colour %v", got)
	}
	if got := px(0, 0); got != [3]uint32{160, 160, 160} {
		t.Errorf("border colour %v", got)
	}
	if _, err := ConfusionImage([][]int{{1, 2}}, 0); err == nil || !strings.Contains(err.Error(), "columns") {
		t.Errorf("ragged matrix: %v", err)
	}
	if _, err := ConfusionImage(nil, 0); err == nil {
		t.Error("empty matrix: no error")
	}
}

func lerpU(a, b uint8, f float64) uint32 { return uint32(lerp(a, b, f)) }

func TestResultShape(t *testing.T) {
	r := &Result{Dataset: "d", Model: "m", Pretrained: "p", Task: "zeroshot_classification",
		Metrics: map[string]float64{"acc1": 0.5}, Language: "en", Details: &Details{Images: 2}}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, k := range []string{`"dataset"`, `"model"`, `"pretrained"`, `"task"`, `"metrics"`, `"language"`, `"skipped": []`} {
		if !bytes.Contains(b, []byte(k)) {
			keys = append(keys, k)
		}
	}
	if len(keys) > 0 {
		t.Errorf("missing %v in %s", keys, b)
	}
	_ = reflect.DeepEqual
}
