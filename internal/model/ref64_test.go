package model

import (
	"fmt"
	"math"
)

// A float64 reference forward of the CLIP towers, written independently of
// the float32 kernels, over parameters held by reference name. The
// finite-difference tests differentiate it numerically.

type params64 map[string][]float64

func paramsOf(m *Model) params64 {
	p := params64{}
	for _, q := range m.Params() {
		v := make([]float64, len(q.Value))
		for i, x := range q.Value {
			v[i] = float64(x)
		}
		p[q.Name] = v
	}
	return p
}

func linear64(x, w, b []float64, rows, in, out int) []float64 {
	y := make([]float64, rows*out)
	for r := range rows {
		for o := range out {
			s := 0.0
			if b != nil {
				s = b[o]
			}
			for i := range in {
				s += x[r*in+i] * w[o*in+i]
			}
			y[r*out+o] = s
		}
	}
	return y
}

func layerNorm64(x, g, b []float64, rows, d int, eps float64) []float64 {
	y := make([]float64, rows*d)
	for r := range rows {
		row := x[r*d : (r+1)*d]
		var mean, v float64
		for _, a := range row {
			mean += a
		}
		mean /= float64(d)
		for _, a := range row {
			v += (a - mean) * (a - mean)
		}
		v /= float64(d)
		for c, a := range row {
			y[r*d+c] = (a-mean)/math.Sqrt(v+eps)*g[c] + b[c]
		}
	}
	return y
}

func act64(x []float64, quick bool) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		if quick {
			y[i] = v / (1 + math.Exp(-1.702*v))
		} else {
			y[i] = v * 0.5 * (1 + math.Erf(v/math.Sqrt2))
		}
	}
	return y
}

// attention64 is multi-head self-attention over stacked qkv [batch·seq, 3w].
func attention64(qkv []float64, batch, seq, w, heads int, causal bool) []float64 {
	hd := w / heads
	ctx := make([]float64, batch*seq*w)
	for b := range batch {
		for h := range heads {
			for i := range seq {
				sc := make([]float64, seq)
				mx := math.Inf(-1)
				for j := range seq {
					if causal && j > i {
						sc[j] = math.Inf(-1)
						continue
					}
					var s float64
					for c := range hd {
						s += qkv[(b*seq+i)*3*w+h*hd+c] * qkv[(b*seq+j)*3*w+w+h*hd+c]
					}
					sc[j] = s / math.Sqrt(float64(hd))
					mx = math.Max(mx, sc[j])
				}
				var sum float64
				for j := range sc {
					sc[j] = math.Exp(sc[j] - mx)
					sum += sc[j]
				}
				for j := range seq {
					p := sc[j] / sum
					for c := range hd {
						ctx[(b*seq+i)*w+h*hd+c] += p * qkv[(b*seq+j)*3*w+2*w+h*hd+c]
					}
				}
			}
		}
	}
	return ctx
}

func block64(p params64, prefix string, x []float64, batch, seq, w, heads int, causal, quick bool, eps float64) []float64 {
	rows := batch * seq
	g := func(n string) []float64 {
		v, ok := p[prefix+n]
		if !ok {
			panic(fmt.Sprintf("no parameter %s%s", prefix, n))
		}
		return v
	}
	h := layerNorm64(x, g("ln_1.weight"), g("ln_1.bias"), rows, w, eps)
	qkv := linear64(h, g("attn.in_proj_weight"), g("attn.in_proj_bias"), rows, w, 3*w)
	a := linear64(attention64(qkv, batch, seq, w, heads, causal), g("attn.out_proj.weight"), g("attn.out_proj.bias"), rows, w, w)
	x1 := make([]float64, len(x))
	for i := range x {
		x1[i] = x[i] + a[i]
	}
	h = layerNorm64(x1, g("ln_2.weight"), g("ln_2.bias"), rows, w, eps)
	f := act64(linear64(h, g("mlp.c_fc.weight"), g("mlp.c_fc.bias"), rows, w, 4*w), quick)
	o := linear64(f, g("mlp.c_proj.weight"), g("mlp.c_proj.bias"), rows, 4*w, w)
	for i := range x1 {
		x1[i] += o[i]
	}
	return x1
}

// image64 is the ViT tower: features [batch, embed].
func image64(c Config, p params64, pixels []float64, batch int) []float64 {
	v := c.Vision
	ps, s, w := v.PatchSize, v.ImageSize, v.Width
	g := s / ps
	seq := g*g + 1
	eps := float64(c.LayerNormEps)
	x := make([]float64, batch*seq*w)
	conv := p["visual.conv1.weight"]
	for b := range batch {
		for t := range seq {
			for o := range w {
				val := p["visual.positional_embedding"][t*w+o]
				if t == 0 {
					val += p["visual.class_embedding"][o]
				} else {
					gy, gx := (t-1)/g, (t-1)%g
					for ch := range 3 {
						for ky := range ps {
							for kx := range ps {
								val += conv[((o*3+ch)*ps+ky)*ps+kx] * pixels[((b*3+ch)*s+gy*ps+ky)*s+gx*ps+kx]
							}
						}
					}
				}
				x[(b*seq+t)*w+o] = val
			}
		}
	}
	x = layerNorm64(x, p["visual.ln_pre.weight"], p["visual.ln_pre.bias"], batch*seq, w, eps)
	for i := range v.Layers {
		x = block64(p, fmt.Sprintf("visual.transformer.resblocks.%d.", i), x, batch, seq, w, v.Heads, false, c.QuickGELU, eps)
	}
	pooled := make([]float64, batch*w)
	for b := range batch {
		copy(pooled[b*w:(b+1)*w], x[b*seq*w:])
	}
	pooled = layerNorm64(pooled, p["visual.ln_post.weight"], p["visual.ln_post.bias"], batch, w, eps)
	return matmul64(pooled, p["visual.proj"], batch, w, c.EmbedDim)
}

// text64 is the text tower: features [len(tokens), embed].
func text64(c Config, p params64, tokens [][]int32) []float64 {
	t := c.Text
	w, L, batch := t.Width, t.ContextLength, len(tokens)
	eps := float64(c.LayerNormEps)
	x := make([]float64, batch*L*w)
	eot := make([]int, batch)
	for b, row := range tokens {
		for l, id := range row {
			if id > row[eot[b]] {
				eot[b] = l
			}
			for k := range w {
				x[(b*L+l)*w+k] = p["token_embedding.weight"][int(id)*w+k] + p["positional_embedding"][l*w+k]
			}
		}
	}
	for i := range t.Layers {
		x = block64(p, fmt.Sprintf("transformer.resblocks.%d.", i), x, batch, L, w, t.Heads, true, c.QuickGELU, eps)
	}
	pooled := make([]float64, batch*w)
	for b := range batch {
		copy(pooled[b*w:(b+1)*w], x[(b*L+eot[b])*w:])
	}
	pooled = layerNorm64(pooled, p["ln_final.weight"], p["ln_final.bias"], batch, w, eps)
	return matmul64(pooled, p["text_projection"], batch, w, c.EmbedDim)
}

func matmul64(a, b []float64, m, k, n int) []float64 {
	c := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for l := range k {
				s += a[i*k+l] * b[l*n+j]
			}
			c[i*n+j] = s
		}
	}
	return c
}

func dot64(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// conv64 is a bias-free convolution of x [batch, in, h, w].
func conv64(x, wt []float64, batch, in, out, h, w, k, stride, pad int) ([]float64, int, int) {
	oh, ow := (h+2*pad-k)/stride+1, (w+2*pad-k)/stride+1
	y := make([]float64, batch*out*oh*ow)
	for b := range batch {
		for o := range out {
			for oy := range oh {
				for ox := range ow {
					var s float64
					for ci := range in {
						for ky := range k {
							iy := oy*stride - pad + ky
							if iy < 0 || iy >= h {
								continue
							}
							for kx := range k {
								ix := ox*stride - pad + kx
								if ix < 0 || ix >= w {
									continue
								}
								s += wt[((o*in+ci)*k+ky)*k+kx] * x[((b*in+ci)*h+iy)*w+ix]
							}
						}
					}
					y[((b*out+o)*oh+oy)*ow+ox] = s
				}
			}
		}
	}
	return y, oh, ow
}

// bnTrain64 is BatchNorm2d in train mode (batch statistics), then ReLU.
func bnTrain64(x, g, b []float64, batch, ch, hw int, relu bool) []float64 {
	y := make([]float64, len(x))
	n := float64(batch * hw)
	for c := range ch {
		var mean, v float64
		for bi := range batch {
			for _, a := range x[(bi*ch+c)*hw : (bi*ch+c+1)*hw] {
				mean += a
			}
		}
		mean /= n
		for bi := range batch {
			for _, a := range x[(bi*ch+c)*hw : (bi*ch+c+1)*hw] {
				v += (a - mean) * (a - mean)
			}
		}
		v /= n
		for bi := range batch {
			for i := (bi*ch + c) * hw; i < (bi*ch+c+1)*hw; i++ {
				y[i] = (x[i]-mean)/math.Sqrt(v+1e-5)*g[c] + b[c]
				if relu && y[i] < 0 {
					y[i] = 0
				}
			}
		}
	}
	return y
}

func avgPool64(x []float64, planes, h, w, k int) []float64 {
	oh, ow := h/k, w/k
	y := make([]float64, planes*oh*ow)
	for p := range planes {
		for oy := range oh {
			for ox := range ow {
				var s float64
				for dy := range k {
					for dx := range k {
						s += x[(p*h+oy*k+dy)*w+ox*k+dx]
					}
				}
				y[(p*oh+oy)*ow+ox] = s / float64(k*k)
			}
		}
	}
	return y
}

// resnet64 is the ModifiedResNet with train-mode BatchNorm: features
// [batch, embed].
func resnet64(c Config, p params64, pixels []float64, batch int) []float64 {
	v := c.Vision
	cbr := func(x []float64, conv, bn string, in, out, h, k, stride, pad int, relu bool) ([]float64, int) {
		y, oh, _ := conv64(x, p[conv+".weight"], batch, in, out, h, h, k, stride, pad)
		return bnTrain64(y, p[bn+".weight"], p[bn+".bias"], batch, out, oh*oh, relu), oh
	}
	w := v.Width
	h := v.ImageSize
	x, h := cbr(pixels, "visual.conv1", "visual.bn1", 3, w/2, h, 3, 2, 1, true)
	x, h = cbr(x, "visual.conv2", "visual.bn2", w/2, w/2, h, 3, 1, 1, true)
	x, h = cbr(x, "visual.conv3", "visual.bn3", w/2, w, h, 3, 1, 1, true)
	x = avgPool64(x, batch*w, h, h, 2)
	h /= 2
	in := w
	for li, nb := range v.Layers4 {
		planes := w << li
		for bi := range nb {
			pre := fmt.Sprintf("visual.layer%d.%d.", li+1, bi)
			stride := 1
			if li > 0 && bi == 0 {
				stride = 2
			}
			a, _ := cbr(x, pre+"conv1", pre+"bn1", in, planes, h, 1, 1, 0, true)
			a, _ = cbr(a, pre+"conv2", pre+"bn2", planes, planes, h, 3, 1, 1, true)
			oh := h
			if stride > 1 {
				a = avgPool64(a, batch*planes, h, h, stride)
				oh = h / stride
			}
			out, _ := cbr(a, pre+"conv3", pre+"bn3", planes, planes*4, oh, 1, 1, 0, false)
			id := x
			if stride > 1 || in != planes*4 {
				src := x
				if stride > 1 {
					src = avgPool64(x, batch*in, h, h, stride)
				}
				id, _ = cbr(src, pre+"downsample.0", pre+"downsample.1", in, planes*4, oh, 1, 1, 0, false)
			}
			for i := range out {
				out[i] = math.Max(out[i]+id[i], 0)
			}
			x, h, in = out, oh, planes*4
		}
	}
	// Attention pool.
	d, hw := in, h*h
	seq := hw + 1
	heads := v.Heads
	tok := make([]float64, batch*seq*d)
	pos := p["visual.attnpool.positional_embedding"]
	for b := range batch {
		for ch := range d {
			var s float64
			for i := range hw {
				tok[(b*seq+i+1)*d+ch] = x[(b*d+ch)*hw+i] + pos[(i+1)*d+ch]
				s += x[(b*d+ch)*hw+i]
			}
			tok[b*seq*d+ch] = s/float64(hw) + pos[ch]
		}
	}
	first := make([]float64, batch*d)
	for b := range batch {
		copy(first[b*d:(b+1)*d], tok[b*seq*d:])
	}
	q := linear64(first, p["visual.attnpool.q_proj.weight"], p["visual.attnpool.q_proj.bias"], batch, d, d)
	k := linear64(tok, p["visual.attnpool.k_proj.weight"], p["visual.attnpool.k_proj.bias"], batch*seq, d, d)
	vv := linear64(tok, p["visual.attnpool.v_proj.weight"], p["visual.attnpool.v_proj.bias"], batch*seq, d, d)
	hd := d / heads
	ctx := make([]float64, batch*d)
	for b := range batch {
		for hh := range heads {
			sc := make([]float64, seq)
			var sum float64
			for j := range seq {
				sc[j] = dot64(q[b*d+hh*hd:b*d+hh*hd+hd], k[(b*seq+j)*d+hh*hd:(b*seq+j)*d+hh*hd+hd]) / math.Sqrt(float64(hd))
			}
			mx := math.Inf(-1)
			for _, s := range sc {
				mx = math.Max(mx, s)
			}
			for j := range sc {
				sc[j] = math.Exp(sc[j] - mx)
				sum += sc[j]
			}
			for j := range seq {
				for cc := range hd {
					ctx[b*d+hh*hd+cc] += sc[j] / sum * vv[(b*seq+j)*d+hh*hd+cc]
				}
			}
		}
	}
	return linear64(ctx, p["visual.attnpool.c_proj.weight"], p["visual.attnpool.c_proj.bias"], batch, d, c.EmbedDim)
}
