package bench

import (
	"testing"
	"time"
)

func TestRunSmall(t *testing.T) {
	r, err := Run(Options{Arch: "ViT-B-32", What: "text", Batch: 1, MinTime: time.Millisecond, Warmup: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.ItemsPerS <= 0 || r.GFLOPs <= 0 || r.Arch != "ViT-B-32" {
		t.Fatalf("bad result %+v", r)
	}
	if _, err := Run(Options{Arch: "nope", What: "image"}); err == nil {
		t.Fatal("unknown arch accepted")
	}
}

func benchTower(b *testing.B, arch, what string, batch int) {
	r, err := Run(Options{Arch: arch, What: what, Batch: batch, MinTime: b.Elapsed() + 2*time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r.ItemsPerS, "items/s")
	b.ReportMetric(r.GFLOPs, "GFLOP/s")
	b.ReportMetric(r.PeakRSSMB, "peakRSS_MB")
}

func BenchmarkViTB32ImageBatch1(b *testing.B)  { benchTower(b, "ViT-B-32", "image", 1) }
func BenchmarkViTB32ImageBatch32(b *testing.B) { benchTower(b, "ViT-B-32", "image", 32) }
func BenchmarkViTB32TextBatch1(b *testing.B)   { benchTower(b, "ViT-B-32", "text", 1) }
func BenchmarkViTB32TextBatch32(b *testing.B)  { benchTower(b, "ViT-B-32", "text", 32) }
func BenchmarkRN50ImageBatch1(b *testing.B)    { benchTower(b, "RN50", "image", 1) }
