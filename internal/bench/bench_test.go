package bench

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/goclip/goclip/internal/model"
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
func BenchmarkRN50ImageBatch32(b *testing.B)   { benchTower(b, "RN50", "image", 32) }

func TestWriteAndLoadSmall(t *testing.T) {
	cfg, err := model.Arch("ViT-B-32")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Vision.Layers, cfg.Text.Layers = 1, 1
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if _, err := WriteRandomSafetensors(path, cfg, 1); err != nil {
		t.Fatal(err)
	}
	r, err := MeasureLoad(path, cfg, 2, model.FP32)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
}

// BenchmarkLoadViTB32 writes a ViT-B/32-shaped random safetensors file and
// loads it as clip.Load does; run it alone (-bench LoadViTB32) so that the
// peak RSS it reports is the load's and one batch-32 embedding's.
func BenchmarkLoadViTB32(b *testing.B) {
	cfg, err := model.Arch("ViT-B-32")
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "vit-b-32.safetensors")
	if _, err := WriteRandomSafetensors(path, cfg, 1); err != nil {
		b.Fatal(err)
	}
	var r LoadResult
	for b.Loop() {
		if r, err = MeasureLoad(path, cfg, 32, model.FP32); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(r.Load.Seconds(), "load_s")
	b.ReportMetric(r.FileMB, "file_MB")
	b.ReportMetric(r.RSSAfterLoad, "rss_loaded_MB")
	b.ReportMetric(r.RSSAfterEmbed, "rss_embed_MB")
	b.ReportMetric(r.PeakRSS, "peakRSS_MB")
}
