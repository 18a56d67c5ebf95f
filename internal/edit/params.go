package edit

import "math"

// axis holds the bilinear sampling of one axis: output i reads source
// positions i0[i] and i1[i] with weights 1-w[i] and w[i].
type axis struct {
	i0, i1 []int
	w      []float64
}

// newAxis samples n outputs from positions start + (i+0.5)·step − 0.5 of a
// source of length src, clamped to the source (reversed when flip is set).
func newAxis(n, src int, start, step float64, flip bool) axis {
	a := axis{make([]int, n), make([]int, n), make([]float64, n)}
	for i := range n {
		j := i
		if flip {
			j = n - 1 - i
		}
		u := start + (float64(j)+0.5)*step - 0.5
		u = min(max(u, 0), float64(src-1))
		f := math.Floor(u)
		a.i0[i] = int(f)
		a.i1[i] = min(int(f)+1, src-1)
		a.w[i] = u - f
	}
	return a
}

// resample writes dst [3][ny.n][nx.n] from src [3][sh][sw] (bilinear,
// separable); tmp must hold 3·sh·len(nx.w) values.
func resample(dst, src []float64, sh, sw int, ny, nx axis, tmp []float64) {
	ow, oh := len(nx.w), len(ny.w)
	for c := range 3 {
		s := src[c*sh*sw : (c+1)*sh*sw]
		t := tmp[c*sh*ow : (c+1)*sh*ow]
		for y := range sh {
			row := s[y*sw : (y+1)*sw]
			tr := t[y*ow : (y+1)*ow]
			for x := range ow {
				tr[x] = row[nx.i0[x]]*(1-nx.w[x]) + row[nx.i1[x]]*nx.w[x]
			}
		}
		d := dst[c*oh*ow : (c+1)*oh*ow]
		for y := range oh {
			r0, r1, w := t[ny.i0[y]*ow:], t[ny.i1[y]*ow:], ny.w[y]
			dr := d[y*ow : (y+1)*ow]
			for x := range ow {
				dr[x] = r0[x]*(1-w) + r1[x]*w
			}
		}
	}
}

// resampleAdjoint adds the transpose of resample applied to g [3][oh][ow]
// into src [3][sh][sw].
func resampleAdjoint(src, g []float64, sh, sw int, ny, nx axis, tmp []float64) {
	ow, oh := len(nx.w), len(ny.w)
	clear(tmp[:3*sh*ow])
	for c := range 3 {
		t := tmp[c*sh*ow : (c+1)*sh*ow]
		d := g[c*oh*ow : (c+1)*oh*ow]
		for y := range oh {
			r0, r1, w := t[ny.i0[y]*ow:], t[ny.i1[y]*ow:], ny.w[y]
			dr := d[y*ow : (y+1)*ow]
			for x := range ow {
				r0[x] += dr[x] * (1 - w)
				r1[x] += dr[x] * w
			}
		}
		s := src[c*sh*sw : (c+1)*sh*sw]
		for y := range sh {
			row := s[y*sw : (y+1)*sw]
			tr := t[y*ow : (y+1)*ow]
			for x := range ow {
				row[nx.i0[x]] += tr[x] * (1 - nx.w[x])
				row[nx.i1[x]] += tr[x] * nx.w[x]
			}
		}
	}
}

// view is an augmentation: the square [y0, y0+side)×[x0, x0+side) of the
// image resized to S×S, mirrored when flip is set.
type view struct {
	y0, x0, side float64
	flip         bool
	ay, ax       axis
	tmp, buf     []float64
}

// sample writes the normalised view of x [3][S][S] (0..1) into pix.
func (v *view) sample(pix []float32, x []float64, S int, mean, std [3]float32) {
	step := v.side / float64(S)
	v.ay = newAxis(S, S, v.y0, step, false)
	v.ax = newAxis(S, S, v.x0, step, v.flip)
	if len(v.tmp) < 3*S*S {
		v.tmp, v.buf = make([]float64, 3*S*S), make([]float64, 3*S*S)
	}
	resample(v.buf, x, S, S, v.ay, v.ax, v.tmp)
	n := S * S
	for c := range 3 {
		for i := range n {
			pix[c*n+i] = (float32(v.buf[c*n+i]) - mean[c]) / std[c]
		}
	}
}

// backward adds d loss / d x to dx given d loss / d pix of this view.
func (v *view) backward(dx []float64, dpix []float32, S int, std [3]float32) {
	n := S * S
	for c := range 3 {
		for i := range n {
			v.buf[c*n+i] = float64(dpix[c*n+i]) / float64(std[c])
		}
	}
	resampleAdjoint(dx, v.buf, S, S, v.ay, v.ax, v.tmp)
}

// state holds the grid coefficients and their Adam moments.
type state struct {
	S      int
	levels []level
	d      []float64 // D = Σ up(P_k) of the last delta call
	acc    []float64
	t      int
}

type level struct {
	s      int
	p      []float64 // [3][s][s]
	g      []float64
	m, v   []float64
	ay, ax axis
	tmp    []float64
}

func newState(S, levels int) *state {
	st := &state{S: S, d: make([]float64, 3*S*S), acc: make([]float64, 3*S*S)}
	for k := range levels {
		s := S >> (k + 1)
		if s < 1 {
			break
		}
		step := float64(s) / float64(S)
		st.levels = append(st.levels, level{
			s: s, p: make([]float64, 3*s*s), g: make([]float64, 3*s*s),
			m: make([]float64, 3*s*s), v: make([]float64, 3*s*s),
			ay: newAxis(S, s, 0, step, false), ax: newAxis(S, s, 0, step, false),
			tmp: make([]float64, 3*s*S),
		})
	}
	if len(st.levels) == 0 { // a tiny image: one 1×1 grid
		st.levels = append(st.levels, level{s: 1, p: make([]float64, 3), g: make([]float64, 3), m: make([]float64, 3), v: make([]float64, 3),
			ay: newAxis(S, 1, 0, 1/float64(S), false), ax: newAxis(S, 1, 0, 1/float64(S), false), tmp: make([]float64, 3*S)})
	}
	return st
}

// delta computes D = Σ up(P_k) and returns strength·tanh(D).
func (st *state) delta(strength float64) []float64 {
	S := st.S
	clear(st.d)
	for i := range st.levels {
		l := &st.levels[i]
		resample(st.acc, l.p, l.s, l.s, l.ay, l.ax, l.tmp)
		for j, a := range st.acc {
			st.d[j] += a
		}
	}
	out := make([]float64, 3*S*S)
	for i, d := range st.d {
		out[i] = strength * math.Tanh(d)
	}
	return out
}

// step takes d loss / d x, masks the gradient of values held at 0 or 1
// that it would push further out, maps it to the coefficients and takes an
// Adam step.
func (st *state) step(dx, x0, delta []float64, strength, lr float64) {
	for i, g := range dx {
		xv := x0[i] + delta[i]
		if (xv >= 1 && g < 0) || (xv <= 0 && g > 0) {
			g = 0
		}
		t := math.Tanh(st.d[i])
		st.acc[i] = g * strength * (1 - t*t)
	}
	st.t++
	const b1, b2, eps = 0.9, 0.999, 1e-8
	c1 := 1 - math.Pow(b1, float64(st.t))
	c2 := 1 - math.Pow(b2, float64(st.t))
	for i := range st.levels {
		l := &st.levels[i]
		clear(l.g)
		resampleAdjoint(l.g, st.acc, l.s, l.s, l.ay, l.ax, l.tmp)
		for j, g := range l.g {
			l.m[j] = b1*l.m[j] + (1-b1)*g
			l.v[j] = b2*l.v[j] + (1-b2)*g*g
			l.p[j] -= lr * (l.m[j] / c1) / (math.Sqrt(l.v[j]/c2) + eps)
		}
	}
}
