package video

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Seconds is a time in seconds. It JSON-encodes as a number with at least
// one decimal ("12.0", "2.4").
type Seconds float64

// MarshalJSON writes the shortest decimal that reads back as s, with a
// ".0" added to whole numbers.
func (s Seconds) MarshalJSON() ([]byte, error) {
	f := float64(s)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	b := strconv.AppendFloat(nil, f, 'f', -1, 64)
	if !strings.ContainsAny(string(b), ".e") {
		b = append(b, ".0"...)
	}
	return b, nil
}

// Defaults of MomentOptions.
const (
	// DefaultShotThreshold is the cosine similarity of consecutive frame
	// embeddings below which a new shot starts.
	DefaultShotThreshold = 0.8
	// DefaultMargin is how far below a moment's best frame score its
	// neighbouring frames may score and still join it.
	DefaultMargin = 0.02
)

// MomentOptions tunes how frame scores become moments. The zero value
// uses the defaults.
type MomentOptions struct {
	// ShotThreshold splits shots where consecutive frames' cosine
	// similarity drops below it (0: DefaultShotThreshold); a moment never
	// straddles a shot boundary. NoShots disables the split.
	ShotThreshold float32
	NoShots       bool
	// Margin: adjacent frames of the same shot scoring at least the
	// moment's peak minus Margin join it (0: DefaultMargin; negative: no
	// merging, one frame per moment).
	Margin float32
	// MinScore: frames scoring below it belong to no moment (0: no
	// minimum).
	MinScore float32
}

func (o MomentOptions) shotThreshold() float32 {
	if o.NoShots {
		return float32(math.Inf(-1))
	}
	if o.ShotThreshold == 0 {
		return DefaultShotThreshold
	}
	return o.ShotThreshold
}

func (o MomentOptions) margin() float32 {
	switch {
	case o.Margin == 0:
		return DefaultMargin
	case o.Margin < 0:
		return -1
	}
	return o.Margin
}

// Moment is a stretch of one video matching a query.
type Moment struct {
	Video string  `json:"video"`
	Start Seconds `json:"start"`
	End   Seconds `json:"end"`
	// Score is the cosine similarity of the moment's best frame with the
	// query.
	Score float32 `json:"score"`
	// Peak is the time of the best frame (for a thumbnail).
	Peak Seconds `json:"-"`
}

// ShotStarts returns the indices i ≥ 1 of frames that begin a new shot:
// those whose L2-normalised embedding has a cosine similarity below
// threshold with the previous frame's.
func ShotStarts(emb [][]float32, threshold float32) []int {
	var out []int
	for i := 1; i < len(emb); i++ {
		if dot(emb[i-1], emb[i]) < threshold {
			out = append(out, i)
		}
	}
	return out
}

// shotIDs numbers the shots of n frames given their starts.
func shotIDs(n int, starts []int) []int {
	ids := make([]int, n)
	s := 0
	for i := range ids {
		for s < len(starts) && starts[s] <= i {
			s++
		}
		ids[i] = s
	}
	return ids
}

func dot(a, b []float32) float32 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return float32(s)
}

// roundMicro rounds t to the microsecond, so that sums such as 1.8+0.2
// print as 2.
func roundMicro(t float64) float64 { return math.Round(t*1e6) / 1e6 }

// FindMoments turns one video's frame scores into at most k moments,
// best first. The frame with the highest score not yet in a moment
// starts a moment; its neighbours join while they are in the same shot
// (shot[i], from ShotStarts) and score at least the peak minus margin
// (margin < 0: no neighbours) and at least minScore. A moment spans from
// its first frame's time to its last frame's time plus step (clamped to
// duration when that is later than the last frame).
func FindMoments(video string, times []float64, step, duration float64, scores []float32, shot []int, margin, minScore float32, k int) []Moment {
	n := len(scores)
	if k <= 0 || n == 0 {
		return nil
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
	used := make([]bool, n)
	var out []Moment
	join := func(j int, peak float32, sh int) bool {
		return !used[j] && shot[j] == sh && scores[j] >= minScore && margin >= 0 && scores[j] >= peak-margin
	}
	for _, p := range order {
		if len(out) == k || scores[p] < minScore {
			break
		}
		if used[p] {
			continue
		}
		peak := scores[p]
		lo, hi := p, p
		used[p] = true
		for lo > 0 && join(lo-1, peak, shot[p]) {
			lo--
			used[lo] = true
		}
		for hi+1 < n && join(hi+1, peak, shot[p]) {
			hi++
			used[hi] = true
		}
		end := times[hi] + step
		if duration > times[hi] && end > duration {
			end = duration
		}
		out = append(out, Moment{Video: video, Start: Seconds(times[lo]), End: Seconds(roundMicro(end)), Score: peak, Peak: Seconds(times[p])})
	}
	return out
}

// sortMoments orders moments best first (ties: video, then start).
func sortMoments(ms []Moment) {
	sort.SliceStable(ms, func(i, j int) bool {
		a, b := ms[i], ms[j]
		if a.Score != b.Score {
			return a.Score > b.Score
		}
		if a.Video != b.Video {
			return a.Video < b.Video
		}
		return a.Start < b.Start
	})
}

// ParseSeconds parses a time or duration in seconds: a number ("5",
// "2.5"), a Go duration ("5s", "1m30s", "1500ms") or a clock time
// ("1:30", "01:02:03.5"). It must be finite and not negative.
func ParseSeconds(s string) (float64, error) {
	s = strings.TrimSpace(s)
	bad := func() (float64, error) {
		return 0, fmt.Errorf("bad time %q (want seconds such as 5, 2.5, 5s, 1m30s or 1:30)", s)
	}
	var v float64
	switch {
	case s == "":
		return bad()
	case strings.Contains(s, ":"):
		parts := strings.Split(s, ":")
		if len(parts) > 3 {
			return bad()
		}
		for i, p := range parts {
			if p == "" || strings.ContainsAny(p, "+-eEInN") {
				return bad()
			}
			x, err := strconv.ParseFloat(p, 64)
			if err != nil || (i < len(parts)-1 && (x != math.Trunc(x) || strings.Contains(p, "."))) || (i > 0 && x >= 60) {
				return bad()
			}
			v = v*60 + x
		}
	default:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			d, derr := time.ParseDuration(s)
			if derr != nil {
				return bad()
			}
			x = d.Seconds()
		}
		v = x
	}
	if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return bad()
	}
	return v, nil
}
