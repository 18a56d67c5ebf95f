package model

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestBatchShards checks that a batch split over the pool's threads (see
// batchShards) gives exactly the features of the unsplit pass, for both
// towers, in fp32 and int8, and uneven splits, and that a bad row is still named by its
// index in the whole batch.
func TestBatchShards(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for name, tc := range map[string]struct {
		cfg  Config
		prec Precision
	}{
		"vit":      {vit(64, 64, 16, 128, 2, 2, 128, 2, 2), FP32},
		"rn":       {resnet(32, 64, [4]int{1, 1, 1, 1}, 8, 64, 1, 1), FP32},
		"vit/int8": {vit(64, 64, 16, 128, 2, 2, 128, 2, 2), Int8},
		"rn/int8":  {resnet(32, 64, [4]int{1, 1, 1, 1}, 8, 64, 1, 1), Int8},
	} {
		cfg := tc.cfg
		m, err := Random(cfg, 5)
		if err != nil {
			t.Fatal(err)
		}
		m.UsePrecision(tc.prec)
		s, ed := cfg.Vision.ImageSize, cfg.EmbedDim
		for _, batch := range []int{2, 3, 4, 9} {
			px := make([]float32, batch*3*s*s)
			for i := range px {
				px[i] = float32((i*7919)%255)/127 - 1
			}
			toks := make([][]int32, batch)
			for b := range toks {
				toks[b] = make([]int32, cfg.Text.ContextLength)
				toks[b][0] = 1
				for l := 1; l <= b%5; l++ {
					toks[b][l] = int32(3 + (b*l)%50)
				}
				toks[b][b%5+1] = int32(cfg.Text.VocabSize - 1)
			}
			var img, txt [2][]float32
			for i, threads := range []int{1, 3} {
				runtime.GOMAXPROCS(threads)
				img[i] = make([]float32, batch*ed)
				m.EncodeImage(img[i], px, batch, nil)
				txt[i] = make([]float32, batch*ed)
				if err := m.EncodeText(txt[i], toks, nil); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("%s batch %d: %d shards at 3 threads", name, batch, batchShards(batch))
			for i := range img[0] {
				if img[0][i] != img[1][i] || txt[0][i] != txt[1][i] {
					t.Fatalf("%s batch %d: element %d: image %v vs %v, text %v vs %v (1 vs 3 threads)",
						name, batch, i, img[0][i], img[1][i], txt[0][i], txt[1][i])
				}
			}
			if batch == 9 {
				toks[7][3] = int32(cfg.Text.VocabSize) // out of the vocabulary
				err := m.EncodeText(txt[1], toks, nil)
				if err == nil || !strings.Contains(err.Error(), "text 7") {
					t.Errorf("bad token in row 7: error %v, want one naming text 7", err)
				}
			}
		}
	}
}

// BenchmarkBatchSplit times a batch of 32 images through the ViT-B/32 and
// RN50 image towers (random weights) split over the pool's threads (as
// EncodeImage runs it) and unsplit (every product split over the threads
// instead), alternating the two per pass so that both see the same
// machine, and reports each one's images/s and their ratio.
//
//	go test ./internal/model -run '^$' -bench BatchSplit -benchtime 4x
func BenchmarkBatchSplit(b *testing.B) {
	for _, arch := range []string{"ViT-B-32", "RN50"} {
		b.Run(arch, func(b *testing.B) {
			cfg, err := Arch(arch)
			if err != nil {
				b.Fatal(err)
			}
			m, err := Random(cfg, 1)
			if err != nil {
				b.Fatal(err)
			}
			const batch = 32
			s := cfg.Vision.ImageSize
			px := make([]float32, batch*3*s*s)
			for i := range px {
				px[i] = float32(i%251)/125 - 1
			}
			out := make([]float32, batch*cfg.EmbedDim)
			unsplit := func() {
				ar := m.arena()
				m.Visual.Forward(ar, out, px, batch, nil)
				m.arenas.Put(ar)
			}
			m.EncodeImage(out, px, batch, nil) // warm up both
			unsplit()
			var split, whole time.Duration
			for b.Loop() {
				t0 := time.Now()
				m.EncodeImage(out, px, batch, nil)
				t1 := time.Now()
				unsplit()
				split, whole = split+t1.Sub(t0), whole+time.Since(t1)
			}
			n := float64(b.N * batch)
			b.ReportMetric(n/split.Seconds(), "split_img/s")
			b.ReportMetric(n/whole.Seconds(), "unsplit_img/s")
			b.ReportMetric(whole.Seconds()/split.Seconds(), "speedup")
		})
	}
}

// TestResNetEarlyChunks checks that running the stem and the first
// stages image by image (ModifiedResNet.Forward) gives exactly the
// features of running every stage on the whole batch.
func TestResNetEarlyChunks(t *testing.T) {
	defer func(c, s int) { earlyChunk, earlyStages = c, s }(earlyChunk, earlyStages)
	cfg := resnet(32, 64, [4]int{2, 1, 2, 1}, 8, 64, 1, 1)
	m, err := Random(cfg, 6)
	if err != nil {
		t.Fatal(err)
	}
	const batch = 5
	s := cfg.Vision.ImageSize
	px := make([]float32, batch*3*s*s)
	for i := range px {
		px[i] = float32((i*7919)%255)/127 - 1
	}
	run := func(chunk, stages int) []float32 {
		earlyChunk, earlyStages = chunk, stages
		out := make([]float32, batch*cfg.EmbedDim)
		ar := m.arena()
		m.Visual.Forward(ar, out, px, batch, nil)
		m.arenas.Put(ar)
		return out
	}
	want := run(batch, 0)
	for _, c := range []struct{ chunk, stages int }{{1, 1}, {2, 1}, {1, 2}, {3, 3}, {1, 4}} {
		got := run(c.chunk, c.stages)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("chunks of %d images through %d stages: element %d = %v, want %v", c.chunk, c.stages, i, got[i], want[i])
			}
		}
	}
}
