// Package bench measures goclip's towers on the released CLIP shapes with
// random weights, reporting throughput, achieved GFLOP/s and peak memory.
package bench

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/goclip/goclip/internal/kernels"
	"github.com/goclip/goclip/internal/model"
)

// Options selects what to measure.
type Options struct {
	Arch      string        // e.g. "ViT-B-32"
	What      string        // "image" or "text"
	Batch     int           // inputs per forward pass
	Threads   int           // GOMAXPROCS while measuring (0 = unchanged)
	Precision string        // "fp32" (default), "bf16" or "int8" (weights of the linear layers; see model.Precision)
	MinTime   time.Duration // measure at least this long (default 3 s)
	Warmup    int           // forward passes before timing (default 1)
}

// Result is one measurement, in the JSON shape `goclip bench --json` prints.
type Result struct {
	Arch      string  `json:"arch"`
	What      string  `json:"what"`
	Batch     int     `json:"batch"`
	Threads   int     `json:"threads"`
	Precision string  `json:"precision"`
	ItemsPerS float64 `json:"items_per_s"`
	MsPerItem float64 `json:"ms_per_item"`
	GFLOPs    float64 `json:"gflops"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// CPUMsPerItem is the process CPU time (all threads) per item: with
	// one thread it equals MsPerItem on an idle machine, and the ratio of
	// the two-thread to the one-thread figure is the cost of splitting the
	// work, robust to other load on the machine (0 where unknown).
	CPUMsPerItem float64 `json:"cpu_ms_per_item"`
	// Kernel names the GEMM microkernel that ran (avx512, avx2, neon, go;
	// see kernels.Kernel), and with int8 the integer one after a slash
	// ("avx2/vnni"): numbers from different kernels do not compare.
	Kernel string `json:"kernel"`
}

// Run builds the architecture with random weights and measures it.
func Run(o Options) (Result, error) {
	cfg, err := model.Arch(o.Arch)
	if err != nil {
		return Result{}, err
	}
	if o.What != "image" && o.What != "text" {
		return Result{}, fmt.Errorf("--what must be image or text, not %q", o.What)
	}
	prec, err := model.ParsePrecision(o.Precision)
	if err != nil {
		return Result{}, err
	}
	o.Precision = string(prec)
	if o.Batch <= 0 {
		o.Batch = 1
	}
	if o.MinTime <= 0 {
		o.MinTime = 3 * time.Second
	}
	if o.Warmup <= 0 {
		o.Warmup = 1
	}
	if o.Threads > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(o.Threads))
	}
	m, err := model.Random(cfg, 1)
	if err != nil {
		return Result{}, err
	}
	m.UsePrecision(prec)
	r := rand.New(rand.NewPCG(2, 3))
	out := make([]float32, o.Batch*cfg.EmbedDim)
	var step func() error
	var flops float64
	if o.What == "image" {
		px := RandomPixels(r, o.Batch, cfg.Vision.ImageSize)
		step = func() error { m.EncodeImage(out, px, o.Batch, nil); return nil }
		flops = cfg.ImageFLOPs()
	} else {
		toks, seq := RandomTokens(r, o.Batch, cfg.Text.ContextLength)
		step = func() error { return m.EncodeText(out, toks, nil) }
		flops = cfg.TextFLOPsAt(seq)
	}
	for range o.Warmup {
		if err := step(); err != nil {
			return Result{}, err
		}
	}
	start, cpu0 := time.Now(), ProcessCPU()
	n := 0
	for time.Since(start) < o.MinTime || n < 2 {
		if err := step(); err != nil {
			return Result{}, err
		}
		n++
	}
	el := time.Since(start).Seconds()
	cpu := ProcessCPU() - cpu0
	items := float64(n * o.Batch)
	return Result{
		Arch: o.Arch, What: o.What, Batch: o.Batch, Threads: runtime.GOMAXPROCS(0), Precision: o.Precision,
		ItemsPerS: items / el, MsPerItem: 1000 * el / items, GFLOPs: flops * items / el / 1e9,
		PeakRSSMB: PeakRSSMB(), CPUMsPerItem: 1000 * cpu.Seconds() / items, Kernel: kernelName(prec),
	}, nil
}

// kernelName is Result.Kernel for precision prec.
func kernelName(prec model.Precision) string {
	switch prec {
	case model.Int8:
		return kernels.Kernel() + "/" + kernels.Int8Kernel()
	case model.BF16:
		return kernels.Kernel() + "/" + kernels.BF16Kernel()
	}
	return kernels.Kernel()
}

// RandomPixels returns batch images of size×size×3 standard normal values,
// the inputs the benchmarks embed.
func RandomPixels(r *rand.Rand, batch, size int) []float32 {
	px := make([]float32, batch*3*size*size)
	for i := range px {
		px[i] = float32(r.NormFloat64())
	}
	return px
}

// RandomTokens returns batch token rows of length ctx: start-of-text, 5 to
// 19 random tokens, end-of-text, padding; and seq, the positions a forward
// runs (up to the batch's last end-of-text).
func RandomTokens(r *rand.Rand, batch, ctx int) (toks [][]int32, seq int) {
	toks = make([][]int32, batch)
	for i := range toks {
		row := make([]int32, ctx)
		row[0] = 49406
		n := 5 + r.IntN(15)
		for j := 1; j <= n; j++ {
			row[j] = int32(r.IntN(49406))
		}
		row[n+1] = 49407
		toks[i] = row
		seq = max(seq, n+2)
	}
	return toks, seq
}

// PeakRSSMB returns the process's peak resident set size in MB (VmHWM on
// Linux; 0 where unknown).
func PeakRSSMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			fs := strings.Fields(rest)
			if len(fs) > 0 {
				kb, _ := strconv.ParseFloat(fs[0], 64)
				return kb / 1024
			}
		}
	}
	return 0
}
