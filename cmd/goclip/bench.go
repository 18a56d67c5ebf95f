package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/goclip/goclip/internal/bench"
)

func init() {
	register("bench", "measure a tower's speed on random weights of a released shape", runBench)
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	var o bench.Options
	fs.StringVar(&o.Arch, "arch", "ViT-B-32", "architecture: ViT-B-32, ViT-B-16, ViT-L-14, RN50, RN101")
	fs.StringVar(&o.What, "what", "image", "tower: image or text")
	fs.IntVar(&o.Batch, "batch", 1, "inputs per forward pass")
	fs.IntVar(&o.Threads, "threads", 0, "worker threads (default GOMAXPROCS)")
	fs.StringVar(&o.Precision, "precision", "fp32", "weights of the linear layers: fp32, bf16 or int8")
	fs.DurationVar(&o.MinTime, "time", 3*time.Second, "measure at least this long")
	asJSON := fs.Bool("json", false, "print one JSON line")
	if err := parse(fs, args); err != nil {
		return err
	}
	r, err := bench.Run(o)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(r)
	}
	fmt.Fprintf(stdout, "%s %s batch %d, %d threads, %s (kernel %s): %.2f %ss/s, %.1f ms/%s, %.1f GFLOP/s, peak RSS %.0f MB\n",
		r.Arch, r.What, r.Batch, r.Threads, r.Precision, r.Kernel, r.ItemsPerS, r.What, r.MsPerItem, r.What, r.GFLOPs, r.PeakRSSMB)
	return nil
}
