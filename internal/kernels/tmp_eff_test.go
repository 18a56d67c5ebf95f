package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

func TestTmpEff(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(2)
	const batch = 16
	var total float64
	for _, s := range []struct{ in, out, k, hw, count int }{
		{256, 64, 1, 56, 2}, {64, 256, 1, 56, 4}, {64, 64, 1, 56, 1},
		{256, 128, 1, 56, 1}, {512, 128, 1, 28, 3}, {128, 512, 1, 28, 4}, {256, 512, 1, 28, 1},
		{512, 256, 1, 28, 1}, {1024, 256, 1, 14, 5}, {256, 1024, 1, 14, 6}, {512, 1024, 1, 14, 1},
		{1024, 512, 1, 14, 1}, {2048, 512, 1, 7, 2}, {512, 2048, 1, 7, 3}, {1024, 2048, 1, 7, 1},
		{512, 512, 3, 7, 2},
	} {
		pc := PackConv(randSlice(r, s.out*s.in*s.k*s.k), s.out, s.in, s.k, 1, s.k/2)
		P := s.hw * s.hw
		x := randSlice(r, batch*P*s.in)
		y := make([]float32, batch*P*s.out)
		pc.Forward(y, x, batch, s.hw, s.hw, nil, ConvBiasReLU)
		t0 := time.Now()
		const n = 5
		for range n {
			pc.Forward(y, x, batch, s.hw, s.hw, nil, ConvBiasReLU)
		}
		d := time.Since(t0).Seconds() / n
		fl := 2 * float64(batch*P*s.in*s.out*s.k*s.k)
		total += d * float64(s.count)
		fmt.Printf("%4d→%4d k%d @%2d ×%d: %6.2f ms  %5.1f GFLOP/s  (×count %.1f ms)\n", s.in, s.out, s.k, s.hw, s.count, d*1e3, fl/d/1e9, d*1e3*float64(s.count))
	}
	fmt.Printf("total %.1f ms per 16 images\n", total*1e3)
}
