package zeroshot

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/model"
	"github.com/goclip/goclip/internal/tokenizer"
)

// BenchmarkBuildClassifier builds a classifier for labels × templates
// prompts on random ViT-B/32 weights and compares its throughput with one
// raw batched pass of the text tower over the same prompts. The size is
// set by $GOCLIP_ZS_LABELS (default 2) and $GOCLIP_ZS_TEMPLATES (default
// 80, the ImageNet set, cycled if larger) and $GOCLIP_ZS_ARCH (default
// ViT-B-32): a ViT-B/32 text costs about 6 GFLOP, so 1,000 × 80 takes hours
// on a 2-core machine, and even 10 × 80 takes minutes per pass. The ratio
// build/raw (build throughput over raw batched throughput; 1 = no overhead)
// is what matters, and it does not depend on the count: Build encodes the
// same flattened prompt list in the same batches of 32. Metrics (from the
// fastest of b.N rounds of each kind): raw-texts/s, build-texts/s,
// build/raw; build/raw-mean uses the total times instead. Use -benchtime
// 3x or more on a busy machine.
//
//	go test ./internal/zeroshot -run '^$' -bench BuildClassifier -benchtime 1x
func BenchmarkBuildClassifier(b *testing.B) {
	dir, ok := fixtures.Lookup()
	if !ok {
		b.Skip("needs the fixture tokenizer ($GOCLIP_FIXTURES)")
	}
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer"))
	if err != nil {
		b.Fatal(err)
	}
	arch := os.Getenv("GOCLIP_ZS_ARCH")
	if arch == "" {
		arch = "ViT-B-32"
	}
	cfg, err := model.Arch(arch)
	if err != nil {
		b.Fatal(err)
	}
	net, err := model.Random(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	nl, nt := envInt(b, "GOCLIP_ZS_LABELS", 2), envInt(b, "GOCLIP_ZS_TEMPLATES", 80)
	imnet, _ := BuiltinTemplates("imagenet")
	templates := make([]string, nt)
	for i := range templates {
		templates[i] = imnet[i%len(imnet)]
		if i >= len(imnet) {
			templates[i] = fmt.Sprintf("%s (%d)", templates[i], i/len(imnet))
		}
	}
	labels := make([]string, nl)
	for i := range labels {
		labels[i] = fmt.Sprintf("object number %d", i)
	}
	const batch = 32 // clip.Model's default
	ctxLen, ed := cfg.Text.ContextLength, cfg.EmbedDim
	// The encoder clip.Model.EncodeTexts would be: tokenize, then the text
	// tower batch by batch.
	enc := EncodeFunc(func(ctx context.Context, texts []string) ([][]float32, error) {
		rows := make([][]int32, len(texts))
		for i, t := range texts {
			rows[i], _ = tok.Tokenize(t, ctxLen)
		}
		flat := make([]float32, len(rows)*ed)
		for lo := 0; lo < len(rows); lo += batch {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			hi := min(lo+batch, len(rows))
			if err := net.EncodeText(flat[lo*ed:hi*ed], rows[lo:hi], nil); err != nil {
				return nil, err
			}
		}
		out := make([][]float32, len(rows))
		for i := range out {
			out[i] = flat[i*ed : (i+1)*ed]
		}
		return out, nil
	})
	prompts := Prompts(labels, templates)
	ctx := context.Background()
	// Rounds alternate which pass goes first, and the ratio uses each
	// kind's fastest round, so that load from other processes on a shared
	// machine biases neither side.
	var raw, build time.Duration
	minRaw, minBuild := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	runRaw := func() {
		t0 := time.Now()
		if _, err := enc(ctx, prompts); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		raw += d
		minRaw = min(minRaw, d)
	}
	runBuild := func() {
		t0 := time.Now()
		if _, err := Build(ctx, enc, labels, templates, Options{}); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		build += d
		minBuild = min(minBuild, d)
	}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			runRaw()
			runBuild()
		} else {
			runBuild()
			runRaw()
		}
	}
	n := float64(len(prompts))
	b.ReportMetric(n/minRaw.Seconds(), "raw-texts/s")
	b.ReportMetric(n/minBuild.Seconds(), "build-texts/s")
	b.ReportMetric(minRaw.Seconds()/minBuild.Seconds(), "build/raw")
	b.ReportMetric(raw.Seconds()/build.Seconds(), "build/raw-mean")
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("$%s=%q is not a positive integer", name, s)
	}
	return n
}
