package train

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/tokenizer"
)

// Loader turns a Dataset into model-ready batches: images decoded and
// preprocessed (optionally with a random resized crop), captions tokenized.
// The order is a seeded permutation per epoch and every random choice is
// seeded by (seed, epoch, sample), so a batch depends only on its cursor,
// never on how many goroutines decoded it.
type Loader struct {
	Data Dataset
	// Captions tokenizes captions; when nil, Tok is used at Context.
	Captions TokenizeFunc
	Tok      *tokenizer.Tokenizer
	Context  int               // token context length (with Tok)
	Pre      imageproc.Options // preprocessing (Size = model image size)
	// Augment enables open_clip's training crop: RandomResizedCrop with
	// scale (0.9, 1.0) and ratio (3/4, 4/3), then the model's resize.
	Augment bool
	Seed    uint64
	Workers int // decoding goroutines (default GOMAXPROCS)

	mu        sync.Mutex
	permEpoch int
	perm      []int
}

// Cursor is a position in the data stream: the epoch and the index into
// that epoch's permutation.
type Cursor struct {
	Epoch int `json:"epoch"`
	Pos   int `json:"pos"`
}

// Batch is a batch of preprocessed samples.
type Batch struct {
	N      int
	Pixels []float32 // [N, 3, S, S]
	Tokens [][]int32 // N rows of Context ids
	Keys   []string
	// Skipped lists the samples skipped while filling this batch because
	// their image was missing or could not be decoded.
	Skipped []error
	// Truncated lists the keys of the samples whose caption was cut to
	// the context length.
	Truncated []string
}

// Next returns the n samples that follow cur, skipping (and reporting)
// unreadable images, and the cursor after them.
func (l *Loader) Next(cur Cursor, n int) (*Batch, Cursor, error) {
	size := l.Pre.Size
	b := &Batch{N: n, Pixels: make([]float32, n*3*size*size), Tokens: make([][]int32, n), Keys: make([]string, n)}
	filled, badRun := 0, 0
	for filled < n {
		need := n - filled
		type slot struct {
			cur   Cursor
			idx   int
			err   error // the sample is skipped
			fatal error // the run stops
			pix   []float32
			tok   []int32
			trunc bool
			key   string
		}
		slots := make([]slot, need)
		for i := range slots {
			if cur.Pos >= l.Data.Len() {
				cur = Cursor{Epoch: cur.Epoch + 1}
			}
			slots[i].cur = cur
			slots[i].idx = l.permutation(cur.Epoch)[cur.Pos]
			cur.Pos++
		}
		workers := l.Workers
		if workers <= 0 {
			workers = runtime.GOMAXPROCS(0)
		}
		var wg sync.WaitGroup
		next := make(chan int)
		for range min(workers, need) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					s := &slots[i]
					s.pix = make([]float32, 3*size*size)
					s.key, s.tok, s.trunc, s.err, s.fatal = l.load(s.pix, s.idx, s.cur)
				}
			}()
		}
		for i := range slots {
			next <- i
		}
		close(next)
		wg.Wait()
		for i := range slots {
			if err := slots[i].fatal; err != nil {
				return nil, cur, err
			}
		}
		for i := range slots {
			s := &slots[i]
			if s.err != nil {
				b.Skipped = append(b.Skipped, s.err)
				badRun++
				if badRun > l.Data.Len() {
					return nil, cur, fmt.Errorf("no readable image in the whole training set (last error: %v)", s.err)
				}
				continue
			}
			badRun = 0
			copy(b.Pixels[filled*3*size*size:], s.pix)
			b.Tokens[filled] = s.tok
			b.Keys[filled] = s.key
			if s.trunc {
				b.Truncated = append(b.Truncated, s.key)
			}
			filled++
		}
	}
	return b, cur, nil
}

// permutation returns epoch's sample order (cached for the latest epoch).
func (l *Loader) permutation(epoch int) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perm == nil || l.permEpoch != epoch {
		r := rand.New(rand.NewPCG(l.Seed, uint64(epoch)))
		l.perm = r.Perm(l.Data.Len())
		l.permEpoch = epoch
	}
	return l.perm
}

// load reads, decodes and preprocesses sample idx into pix and tokenizes
// its caption. err means the sample is to be skipped (its image is
// unreadable); fatal, that the caption could not be tokenized.
func (l *Loader) load(pix []float32, idx int, cur Cursor) (key string, tok []int32, truncated bool, err, fatal error) {
	s := l.Data.Sample(idx)
	data, err := s.Image()
	if err != nil {
		return s.Key, nil, false, fmt.Errorf("%s: %w", s.Key, err), nil
	}
	img, err := imageproc.Decode(bytes.NewReader(data), s.Key, l.Pre)
	if err != nil {
		return s.Key, nil, false, err, nil
	}
	o := l.Pre
	if l.Augment {
		r := rand.New(rand.NewPCG(l.Seed^0x9e3779b97f4a7c15, uint64(cur.Epoch)<<32|uint64(idx)))
		img = cropImage(img, randomResizedCrop(r, img.Width, img.Height, 0.9, 1.0))
		o.ResizeWidth, o.ResizeHeight = o.Size, o.Size
	}
	if err := imageproc.PreprocessInto(pix, img, o); err != nil {
		return s.Key, nil, false, fmt.Errorf("%s: %w", s.Key, err), nil
	}
	if l.Captions != nil {
		tok, truncated, err = l.Captions(s.Caption)
		if err != nil {
			return s.Key, nil, false, nil, fmt.Errorf("%s: caption %q: %w", s.Key, s.Caption, err)
		}
		return s.Key, tok, truncated, nil, nil
	}
	tok, truncated = l.Tok.Tokenize(s.Caption, l.Context)
	return s.Key, tok, truncated, nil, nil
}

// rect is a crop rectangle in pixels.
type rect struct{ x, y, w, h int }

// randomResizedCrop picks a crop like torchvision's RandomResizedCrop:
// up to 10 tries of an area fraction in [lo, hi] and a log-uniform aspect
// ratio in [3/4, 4/3], else a centre crop clamped to that ratio.
func randomResizedCrop(r *rand.Rand, w, h int, lo, hi float64) rect {
	area := float64(w * h)
	logLo, logHi := math.Log(3.0/4), math.Log(4.0/3)
	for range 10 {
		target := area * (lo + (hi-lo)*r.Float64())
		ratio := math.Exp(logLo + (logHi-logLo)*r.Float64())
		cw := int(math.Round(math.Sqrt(target * ratio)))
		ch := int(math.Round(math.Sqrt(target / ratio)))
		if cw > 0 && cw <= w && ch > 0 && ch <= h {
			return rect{x: r.IntN(w - cw + 1), y: r.IntN(h - ch + 1), w: cw, h: ch}
		}
	}
	in := float64(w) / float64(h)
	cw, ch := w, h
	switch {
	case in < 3.0/4:
		ch = int(math.Round(float64(w) / (3.0 / 4)))
	case in > 4.0/3:
		cw = int(math.Round(float64(h) * (4.0 / 3)))
	}
	return rect{x: (w - cw) / 2, y: (h - ch) / 2, w: cw, h: ch}
}

// cropImage returns the part of img inside c (which must lie inside it).
func cropImage(img *imageproc.Image, c rect) *imageproc.Image {
	out := &imageproc.Image{Mode: img.Mode, Width: c.w, Height: c.h, Palette: img.Palette}
	if img.Mode == imageproc.ModeI {
		out.Pix32 = make([]int32, c.w*c.h)
		for y := range c.h {
			copy(out.Pix32[y*c.w:(y+1)*c.w], img.Pix32[(c.y+y)*img.Width+c.x:])
		}
		return out
	}
	ch := img.Mode.Channels()
	out.Pix = make([]uint8, c.w*c.h*ch)
	for y := range c.h {
		copy(out.Pix[y*c.w*ch:(y+1)*c.w*ch], img.Pix[((c.y+y)*img.Width+c.x)*ch:])
	}
	return out
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0)) }
