package kernels

import (
	"strings"
	"testing"
	"unsafe"
)

// TestCheckKernel checks the start-up check of the microkernels: every
// kernel offered here and the portable tile product pass it; kernels that
// are wrong in the ways an assembly kernel can be (a lane, the
// accumulate form, the bias, a store past the tile, a row variant, the
// A-streaming form, the prefetching forms) fail it, named.
func TestCheckKernel(t *testing.T) {
	for _, k := range available {
		if err := checkKernel(k); err != nil {
			t.Errorf("kernel %s: %v", k.name, err)
		}
	}
	tile := func(mr, nr int) func(k int, a, b, c *float32, ldc int, accum int) {
		return func(k int, a, b, c *float32, ldc int, accum int) { tileGo(mr, nr, k, a, b, c, ldc, accum, nil) }
	}
	if err := checkKernel(&microKernel{name: "tile6x32", mr: 6, nr: 32, fn: tile(6, 32)}); err != nil {
		t.Errorf("the portable 6×32 tile: %v", err)
	}
	broken := map[string]*microKernel{
		"lane": {mr: 6, nr: 32, fn: func(k int, a, b, c *float32, ldc int, accum int) {
			tileGo(6, 32, k, a, b, c, ldc, accum, nil)
			*c += 1
		}},
		"accum": {mr: 4, nr: 16, fn: func(k int, a, b, c *float32, ldc int, accum int) {
			tileGo(4, 16, k, a, b, c, ldc, 0, nil)
		}},
		"past the tile": {mr: 2, nr: 8, fn: func(k int, a, b, c *float32, ldc int, accum int) {
			tileGo(2, 8, k, a, b, c, ldc, accum, nil)
			unsafe.Slice(c, 9)[8]++ // a store one lane too wide
		}},
		"bias": {mr: 3, nr: 8, fn: tile(3, 8), fnBias: func(k int, a, b, c *float32, ldc int, accum int, bias *float32) {
			tileGo(3, 8, k, a, b, c, ldc, accum, nil)
		}},
		"row variant":      {mr: 6, nr: 16, fn: tile(6, 16), rows: []*microKernel{{name: "broken-r2", mr: 2, nr: 16, fn: tile(2, 8)}}},
		"A-streaming form": {mr: 6, nr: 16, fn: tile(6, 16), fnStreamA: tile(5, 16)},
		"prefetching form": {mr: 6, nr: 16, fn: tile(6, 16), fnNext: func(k int, a, b, c *float32, ldc int, accum int, next uintptr) {
			tileGo(6, 16, k, a, b, c, ldc, 1, nil)
		}},
		"prefetching bias form": {mr: 6, nr: 16, fn: tile(6, 16), fnNextBias: func(k int, a, b, c *float32, ldc int, accum int, bias *float32, next uintptr) {
			tileGo(6, 16, k, a, b, c, ldc, accum, nil)
		}},
	}
	for what, k := range broken {
		if k.name == "" {
			k.name = "broken-" + strings.ReplaceAll(what, " ", "-")
		}
		err := checkKernel(k)
		if err == nil {
			t.Errorf("a kernel wrong in its %s passed", what)
			continue
		}
		if !strings.Contains(err.Error(), "broken-") {
			t.Errorf("%s: error %q does not name the kernel", what, err)
		}
		t.Logf("%s: %v", what, err)
	}
}

// TestCheckQKernel checks the start-up check of the int8 microkernels: the
// portable one and the one in use pass it; a wrong one fails it.
func TestCheckQKernel(t *testing.T) {
	if err := checkQKernel("go", qgemmGo); err != nil {
		t.Error(err)
	}
	if err := checkQKernel(Int8Kernel(), qgemmAsm); err != nil {
		t.Error(err)
	}
	err := checkQKernel("broken", func(r, kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int) {
		qgemmGo(r, kp, a, lda, b, c, ldc, sa, sw, bias, accum)
		if r == 3 && bias != nil {
			*c = -*c
		}
	})
	if err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("a wrong int8 kernel: %v", err)
	}
	t.Log(err)
}
