package evaluate

import (
	"fmt"
	"math"
)

// ClassStat is one class's row of the per-class table.
type ClassStat struct {
	Class   string `json:"class"`
	Images  int    `json:"images"`
	Correct int    `json:"correct"` // top-1 hits
	// Recall is Correct/Images; it is meaningless (and reported as 0)
	// when Images is 0: such classes are left out of the mean.
	Recall float64 `json:"recall"`
}

// ClassificationMetrics are CLIP_benchmark's zero-shot classification
// metrics plus the per-class table and the confusion matrix.
type ClassificationMetrics struct {
	N                  int         `json:"n"`
	Acc1               float64     `json:"acc1"`
	Acc5               float64     `json:"acc5"`
	MeanPerClassRecall float64     `json:"mean_per_class_recall"`
	PerClass           []ClassStat `json:"per_class"`
	// Confusion[t][p] counts images of true class t predicted as p.
	Confusion [][]int `json:"confusion"`
}

// Rank returns the 0-based rank of entry c in scores, highest first; ties
// rank the lower index first (a stable descending sort). NaN scores rank
// below every number.
func Rank(scores []float32, c int) int {
	sc := key(scores[c])
	r := 0
	for j, s := range scores {
		k := key(s)
		if k > sc || (k == sc && j < c) {
			r++
		}
	}
	return r
}

func key(v float32) float64 {
	if v != v {
		return math.Inf(-1)
	}
	return float64(v)
}

// Argmax returns the index of the highest score (the lowest such index on
// ties; -1 for an empty row).
func Argmax(scores []float32) int {
	best := -1
	for j, s := range scores {
		if best < 0 || key(s) > key(scores[best]) {
			best = j
		}
	}
	return best
}

// Classification scores predictions: scores[i] holds image i's logits over
// the classes, truth[i] its class. acc@k counts an image as a hit when its
// class ranks in the top k (see Rank; k is capped at the number of
// classes). Mean per-class recall averages top-1 recall over the classes
// that have images, as sklearn's balanced_accuracy_score (CLIP_benchmark)
// does.
func Classification(scores [][]float32, truth []int, classes []string) (*ClassificationMetrics, error) {
	if len(scores) != len(truth) {
		return nil, fmt.Errorf("evaluate: %d score rows for %d labels", len(scores), len(truth))
	}
	nc := len(classes)
	m := &ClassificationMetrics{N: len(truth), PerClass: make([]ClassStat, nc), Confusion: make([][]int, nc)}
	for c := range m.Confusion {
		m.Confusion[c] = make([]int, nc)
		m.PerClass[c].Class = classes[c]
	}
	k5 := min(5, nc)
	var hit1, hit5 int
	for i, row := range scores {
		t := truth[i]
		if len(row) != nc {
			return nil, fmt.Errorf("evaluate: score row %d has %d classes, want %d", i, len(row), nc)
		}
		if t < 0 || t >= nc {
			return nil, fmt.Errorf("evaluate: label %d of image %d is not a class index (%d classes)", t, i, nc)
		}
		r := Rank(row, t)
		p := Argmax(row)
		m.Confusion[t][p]++
		m.PerClass[t].Images++
		if r == 0 {
			hit1++
			m.PerClass[t].Correct++
		}
		if r < k5 {
			hit5++
		}
	}
	if m.N > 0 {
		m.Acc1 = float64(hit1) / float64(m.N)
		m.Acc5 = float64(hit5) / float64(m.N)
	}
	var sum float64
	var present int
	for c := range m.PerClass {
		s := &m.PerClass[c]
		if s.Images > 0 {
			s.Recall = float64(s.Correct) / float64(s.Images)
			sum += s.Recall
			present++
		}
	}
	if present > 0 {
		m.MeanPerClassRecall = sum / float64(present)
	}
	return m, nil
}
