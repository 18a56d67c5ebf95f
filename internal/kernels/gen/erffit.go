//go:build ignore

// erffit fits the two polynomials of the float32 exact GELU in ops.go
// (erf(a)/a in a² below the split, erfc(a)·e^(a²) in t = 1/(1+a) above it)
// by least squares and prints the worst relative error of GELU over
// [-14, 14] in float32 arithmetic against float64 math.Erf:
//
//	go run gen/erffit.go
package main

import (
	"fmt"
	"math"
)

// lsq fits coefficients c (degree d) of sum c_i * v^i to y at points v by
// least squares via normal equations on Chebyshev-scaled variable... use
// plain monomials with Householder QR.
func lsq(v, y, w []float64, d int) []float64 {
	n := len(v)
	m := d + 1
	A := make([][]float64, n)
	b := make([]float64, n)
	for i := range v {
		A[i] = make([]float64, m)
		p := 1.0
		for j := 0; j < m; j++ {
			A[i][j] = p * w[i]
			p *= v[i]
		}
		b[i] = y[i] * w[i]
	}
	// Householder QR
	for k := 0; k < m; k++ {
		var norm float64
		for i := k; i < n; i++ {
			norm += A[i][k] * A[i][k]
		}
		norm = math.Sqrt(norm)
		if A[k][k] > 0 {
			norm = -norm
		}
		u := make([]float64, n)
		for i := k; i < n; i++ {
			u[i] = A[i][k]
		}
		u[k] -= norm
		var un float64
		for i := k; i < n; i++ {
			un += u[i] * u[i]
		}
		for j := k; j < m; j++ {
			var s float64
			for i := k; i < n; i++ {
				s += u[i] * A[i][j]
			}
			s = 2 * s / un
			for i := k; i < n; i++ {
				A[i][j] -= s * u[i]
			}
		}
		var s float64
		for i := k; i < n; i++ {
			s += u[i] * b[i]
		}
		s = 2 * s / un
		for i := k; i < n; i++ {
			b[i] -= s * u[i]
		}
	}
	c := make([]float64, m)
	for j := m - 1; j >= 0; j-- {
		s := b[j]
		for k := j + 1; k < m; k++ {
			s -= A[j][k] * c[k]
		}
		c[j] = s / A[j][j]
	}
	return c
}

func horner32(c []float32, v float32) float32 {
	r := c[len(c)-1]
	for i := len(c) - 2; i >= 0; i-- {
		r = r*v + c[i]
	}
	return r
}

var split = 0.921875

func main() {
	for _, sp := range []float64{0.5, 0.625, 0.75} {
		split = sp
		fmt.Println("split", sp)
		run()
	}
}

func run() {

	// Piece 1: erf(a)/a as poly in a^2 on [0, split]
	var v1, y1, w1 []float64
	for i := 0; i <= 4000; i++ {
		a := float64(split) * (0.5 - 0.5*math.Cos(math.Pi*float64(i)/4000))
		v1 = append(v1, a*a)
		if a == 0 {
			y1 = append(y1, 2/math.Sqrt(math.Pi))
		} else {
			y1 = append(y1, math.Erf(a)/a)
		}
		w1 = append(w1, 1)
	}
	// Piece 2: erfc(a)*exp(a^2) as poly in t = 1/(1+a)? on [split, 4]
	var v2, y2, w2 []float64
	const hi = 9.5
	for i := 0; i <= 4000; i++ {
		a := split + (hi-split)*(0.5-0.5*math.Cos(math.Pi*float64(i)/4000))
		t := 1 / (1 + a)
		v2 = append(v2, t)
		y2 = append(y2, math.Erfc(a)*math.Exp(a*a))
		w2 = append(w2, 1/(math.Erfc(a)*math.Exp(a*a))) // relative error of erfc
	}
	for _, split2 := range []float64{split} {
		_ = split2
	}
	for _, d := range []int{5, 6} {
		for _, d2 := range []int{8, 9, 10} {
			c1 := lsq(v1, y1, w1, d)
			c2 := lsq(v2, y2, w2, d2)
			f1 := make([]float32, len(c1))
			for i := range c1 {
				f1[i] = float32(c1[i])
			}
			f2 := make([]float32, len(c2))
			for i := range c2 {
				f2[i] = float32(c2[i])
			}
			worst, wx := 0.0, 0.0
			for i := -400000; i <= 400000; i++ {
				x := float32(14 * float64(i) / 400000)
				a := float32(math.Abs(float64(x))) * float32(1/math.Sqrt2)
				var phi2 float32
				if float64(a) < split {
					es := a * horner32(f1, a*a)
					if x < 0 {
						phi2 = 1 - es
					} else {
						phi2 = 1 + es
					}
				} else {
					t := 1 / (1 + a)
					sh := x * x * 0.5
					sl := float32(0.5*float64(x)*float64(x) - float64(sh))
					c := float32(math.Exp(-float64(sh))) * (1 - sl) * horner32(f2, t)
					if c < 0 {
						c = 0
					}
					if x < 0 {
						phi2 = c
					} else {
						phi2 = 2 - c
					}
				}
				got := 0.5 * x * phi2
				want := float64(x) * 0.5 * (1 + math.Erf(float64(x)/math.Sqrt2))
				d := math.Abs(float64(got) - want)
				if d > 1e-30 && d > 1e-12 {
					r := d / math.Abs(want)
					if r > worst {
						worst, wx = r, float64(x)
					}
				}
			}
			fmt.Printf("d1=%d d2=%d worst rel=%.3g at x=%g\n", d, d2, worst, wx)
			if d == 5 && d2 == 8 && split == 0.625 {
				fmt.Printf("c1=%v\nc2=%v\n", f1, f2)
			}
		}
	}
}
