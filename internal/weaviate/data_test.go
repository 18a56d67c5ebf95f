//go:build !386 && !arm && !mips && !mipsle

package weaviate

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/kernels"
)

var (
	modelOnce sync.Once
	modelVal  *clip.Model
	modelErr  error
)

// testModel loads the fixture model that ships as an open_clip
// safetensors file (once per test binary).
func testModel(tb testing.TB) (*clip.Model, string) {
	tb.Helper()
	dir := fixtures.Dir(tb)
	file := fixtures.ModelFile(tb, dir, "open_clip_model.safetensors")
	modelOnce.Do(func() {
		modelVal, modelErr = clip.Load(file, clip.WithTokenizer(filepath.Join(dir, "tokenizer")), clip.WithBatchSize(16))
	})
	if modelErr != nil {
		tb.Fatal(modelErr)
	}
	return modelVal, dir
}

func randVecs(r *rand.Rand, n, dim int) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		v := make([]float32, dim)
		for j := range v {
			v[j] = float32(r.NormFloat64())
		}
		out[i] = kernels.Normalized(v)
	}
	return out
}

// clusteredVecs returns n unit vectors in dim dimensions shaped like
// real CLIP embeddings rather than uniform noise: a direction shared by
// all (CLIP embeddings of one modality sit in a cone, pairwise cosine
// well above 0), one of centers topic directions, and a per-item part
// of norm about sigma that lives mostly in a 128-dimensional subspace
// (low intrinsic dimension) plus a little isotropic noise. With
// sigma 1, items of one topic have cosine about 0.5, of different
// topics about 0.1, and the nearest neighbours differ by their
// per-item parts, as near-duplicate photos do.
func clusteredVecs(r *rand.Rand, n, dim, centers int, sigma float64) [][]float32 {
	common := randVecs(r, 1, dim)[0]
	cs := randVecs(r, centers, dim)
	sub := min(128, dim)
	basis := randVecs(r, sub, dim) // nearly orthogonal in high dimension
	out := make([][]float32, n)
	z := make([]float64, sub)
	for i := range out {
		c := cs[r.IntN(centers)]
		v := make([]float32, dim)
		for j := range z {
			z[j] = r.NormFloat64() * sigma / math.Sqrt(float64(sub))
		}
		for j := range v {
			x := 0.5*float64(common[j]) + float64(c[j]) + 0.3*sigma*r.NormFloat64()/math.Sqrt(float64(dim))
			v[j] = float32(x)
		}
		for b, bv := range basis {
			for j := range v {
				v[j] += float32(z[b]) * bv[j]
			}
		}
		out[i] = kernels.Normalized(v)
	}
	return out
}

func dot(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// exactTop returns the indices of the k vectors most similar to q, best
// first, and the k-th best score.
func exactTop(vecs [][]float32, q []float32, k int) ([]int, float32) {
	type h struct {
		i int
		s float32
	}
	hs := make([]h, len(vecs))
	for i, v := range vecs {
		hs[i] = h{i, dot(v, q)}
	}
	sort.Slice(hs, func(a, b int) bool { return hs[a].s > hs[b].s })
	k = min(k, len(hs))
	out := make([]int, k)
	for i := range out {
		out[i] = hs[i].i
	}
	if k == 0 {
		return out, 0
	}
	return out, hs[k-1].s
}
