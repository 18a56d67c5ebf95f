package train

import (
	"fmt"
	"math"

	"github.com/goclip/goclip/internal/model"
)

// ClipLoss is open_clip's ClipLoss (one process): the features are
// L2-normalised, logits_per_image = (s·img)·txtᵀ and logits_per_text =
// (s·txt)·imgᵀ are formed separately (the scale multiplies the features
// before the product, as Python evaluates s * a @ b), and the loss is the
// mean of the two cross-entropies against the diagonal labels.
//
// img and txt are n rows of dim unnormalised features; logitScale is the
// multiplier s (exp of the model's logit_scale parameter). It returns the
// loss, its gradients with respect to img and txt (freshly allocated), and
// d loss / d s. Sums run in float64.
func ClipLoss(img, txt []float32, n, dim int, logitScale float32) (loss float32, dImg, dTxt []float32, dLogitScale float32) {
	if n <= 0 || dim <= 0 || len(img) != n*dim || len(txt) != n*dim {
		panic(fmt.Sprintf("train.ClipLoss: %d image and %d text values for %d×%d", len(img), len(txt), n, dim))
	}
	l, dImg, dTxt, ds := clipLoss(img, txt, n, dim, float64(logitScale))
	return float32(l), dImg, dTxt, float32(ds)
}

// clipLoss is ClipLoss with the loss and scale in float64.
func clipLoss(img, txt []float32, n, dim int, s float64) (loss float64, dImg, dTxt []float32, ds float64) {
	a, na := normalize(img, n, dim)
	t, nt := normalize(txt, n, dim)
	sa, st := scaled(a, s), scaled(t, s)
	li := products(sa, t, n, dim) // logits_per_image
	lt := products(st, a, n, dim) // logits_per_text
	ce := func(l []float64) float64 {
		var tot float64
		for i := range n {
			row := l[i*n : (i+1)*n]
			mx := math.Inf(-1)
			for _, v := range row {
				mx = math.Max(mx, v)
			}
			var sum float64
			for _, v := range row {
				sum += math.Exp(v - mx)
			}
			lse := mx + math.Log(sum)
			tot += lse - row[i]
			// d CE_mean / d logits = (softmax - onehot)/n, then /2 for the mean
			// of the two losses.
			for j, v := range row {
				g := math.Exp(v - lse)
				if j == i {
					g--
				}
				row[j] = g / float64(n) / 2
			}
		}
		return tot / float64(n)
	}
	loss = (ce(li) + ce(lt)) / 2 // li, lt now hold the logit gradients
	da := make([]float64, n*dim)
	dt := make([]float64, n*dim)
	for i := range n {
		for j := range n {
			gi, gt := li[i*n+j], lt[i*n+j]
			ai, tj := a[i*dim:(i+1)*dim], t[j*dim:(j+1)*dim]
			ti, aj := t[i*dim:(i+1)*dim], a[j*dim:(j+1)*dim]
			var dotI, dotT float64
			for k := range dim {
				// logits_per_image[i,j] = s·a_i·t_j
				da[i*dim+k] += gi * s * tj[k]
				dt[j*dim+k] += gi * s * ai[k]
				dotI += ai[k] * tj[k]
				// logits_per_text[i,j] = s·t_i·a_j
				dt[i*dim+k] += gt * s * aj[k]
				da[j*dim+k] += gt * s * ti[k]
				dotT += ti[k] * aj[k]
			}
			ds += gi*dotI + gt*dotT
		}
	}
	return loss, normalizeBackward(da, a, na, n, dim), normalizeBackward(dt, t, nt, n, dim), ds
}

// normalize returns the rows of x divided by max(‖row‖, 1e-12)
// (F.normalize) in float64, and the divisors.
func normalize(x []float32, n, dim int) ([]float64, []float64) {
	out := make([]float64, n*dim)
	norms := make([]float64, n)
	for i := range n {
		var q float64
		for _, v := range x[i*dim : (i+1)*dim] {
			q += float64(v) * float64(v)
		}
		nrm := math.Max(math.Sqrt(q), 1e-12)
		norms[i] = nrm
		for k, v := range x[i*dim : (i+1)*dim] {
			out[i*dim+k] = float64(v) / nrm
		}
	}
	return out, norms
}

// normalizeBackward maps d loss / d normalised rows to d loss / d rows:
// (d - u·(u·d))/‖x‖ (the clamp at 1e-12 never binds for real features).
func normalizeBackward(d, u, norms []float64, n, dim int) []float32 {
	out := make([]float32, n*dim)
	for i := range n {
		ur, dr := u[i*dim:(i+1)*dim], d[i*dim:(i+1)*dim]
		var p float64
		for k := range dim {
			p += ur[k] * dr[k]
		}
		for k := range dim {
			out[i*dim+k] = float32((dr[k] - ur[k]*p) / norms[i])
		}
	}
	return out
}

func scaled(x []float64, s float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v * s
	}
	return out
}

// products returns a·bᵀ for n rows of dim values.
func products(a, b []float64, n, dim int) []float64 {
	out := make([]float64, n*n)
	for i := range n {
		for j := range n {
			var s float64
			for k := range dim {
				s += a[i*dim+k] * b[j*dim+k]
			}
			out[i*n+j] = s
		}
	}
	return out
}

// ContrastiveGrad computes the CLIP contrastive loss of the pairs (image i,
// text i) and its gradients: it zeroes m's gradients, runs both towers in
// training mode, applies ClipLoss with the model's exp(logit_scale), and
// backpropagates into every Param.Grad (logit_scale included). pixels holds
// len(tokens) images [n, 3, S, S]. It returns the loss and d loss / d pixels
// (a buffer the next training pass reuses).
func ContrastiveGrad(m *model.Model, pixels []float32, tokens [][]int32) (loss float32, dPixels []float32, err error) {
	return NetContrastiveGrad(m, m.LogitScale, pixels, tokens)
}

// NetContrastiveGrad is ContrastiveGrad for any Net whose logit_scale
// parameter (log space) is logitScale: zero the gradients, both towers in
// training mode, ClipLoss, backpropagation into every Param.Grad.
func NetContrastiveGrad(m Net, logitScale float32, pixels []float32, tokens [][]int32) (loss float32, dPixels []float32, err error) {
	n := len(tokens)
	if n == 0 {
		return 0, nil, fmt.Errorf("train: empty batch")
	}
	m.ZeroGrad()
	img, backImg, err := m.EncodeImageTrain(pixels, n)
	if err != nil {
		return 0, nil, err
	}
	txt, backTxt, err := m.EncodeTextTrain(tokens)
	if err != nil {
		return 0, nil, err
	}
	scale := float32(math.Exp(float64(logitScale)))
	loss, dImg, dTxt, dScale := ClipLoss(img, txt, n, len(img)/n, scale)
	backTxt(dTxt)
	dPixels = backImg(dImg)
	m.AddLogitScaleGrad(dScale)
	return loss, dPixels, nil
}
