package index

import (
	"math"
	"math/rand/v2"
)

// clustered returns n unit vectors of dim drawn around c Gaussian centres
// on the unit sphere: normalise(centre + noise·N(0, I/dim)). CLIP image
// embeddings are clustered like this, not uniform on the sphere.
func clustered(seed uint64, n, dim, c int, noise float64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	centres := make([]float32, c*dim)
	for i := range c {
		gauss(r, centres[i*dim:(i+1)*dim], 1)
		normalize(centres[i*dim : (i+1)*dim])
	}
	return around(r, centres, n, dim, noise)
}

func around(r *rand.Rand, centres []float32, n, dim int, noise float64) []float32 {
	c := len(centres) / dim
	out := make([]float32, n*dim)
	sd := noise / math.Sqrt(float64(dim))
	for i := range n {
		v := out[i*dim : (i+1)*dim]
		gauss(r, v, sd)
		ci := r.IntN(c)
		for j := range v {
			v[j] += centres[ci*dim+j]
		}
		normalize(v)
	}
	return out
}

func gauss(r *rand.Rand, v []float32, sd float64) {
	for i := range v {
		v[i] = float32(r.NormFloat64() * sd)
	}
}

func normalize(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	inv := 1 / math.Sqrt(s)
	for i := range v {
		v[i] = float32(float64(v[i]) * inv)
	}
}

// dataset is a clustered corpus with queries drawn the same way.
func dataset(seed uint64, n, nq, dim, c int) (vecs, queries []float32) {
	all := clustered(seed, n+nq, dim, c, 0.8)
	return all[:n*dim], all[n*dim:]
}

// recallAt returns |approx ∩ exact| / |exact| over the first k of each.
func recallAt(approx, exact []Hit, k int) float64 {
	in := map[int]bool{}
	for _, h := range exact[:min(k, len(exact))] {
		in[h.ID] = true
	}
	hit := 0
	for _, h := range approx[:min(k, len(approx))] {
		if in[h.ID] {
			hit++
		}
	}
	return float64(hit) / float64(len(in))
}
