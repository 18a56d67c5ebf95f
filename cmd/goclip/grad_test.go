package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/fixtures"
)

// TestGradReproducesFixtures runs goclip grad on every fixture model with a
// reference gradient batch and compares the file with the fixtures.
func TestGradReproducesFixtures(t *testing.T) {
	dir := fixtures.Dir(t)
	exp := fixtures.Expected(t, dir)
	man := fixtures.ReadManifest(t, dir)
	texts := fixtures.Texts(t, dir)
	files := map[string]string{}
	for _, im := range man.Images {
		files[im.Name] = im.File
	}
	ran := false
	for _, mm := range man.Models {
		var gb struct {
			Images      []string `json:"images"`
			TextIndices []int    `json:"text_indices"`
		}
		if len(mm.GradBatch) == 0 || json.Unmarshal(mm.GradBatch, &gb) != nil || len(gb.Images) == 0 {
			continue
		}
		ran = true
		t.Run(mm.Name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "grad.safetensors")
			args := []string{"grad", "--model", filepath.Join(dir, mm.Name, "open_clip_model.safetensors"),
				"--tokenizer", filepath.Join(dir, "tokenizer"), "--out", out}
			for i, name := range gb.Images {
				args = append(args, "--image", filepath.Join(dir, files[name]), "--text", texts[gb.TextIndices[i]])
			}
			stdout, stderr, code := run(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !strings.Contains(stdout, "loss") {
				t.Errorf("stdout %q does not report the loss", stdout)
			}
			got, err := checkpoint.OpenSafetensors(out)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			compare := func(gotName, refName string, tol float64) {
				t.Helper()
				gt := got.Tensor(gotName)
				if gt == nil {
					t.Errorf("%s missing from the output", gotName)
					return
				}
				g, err := gt.Float32()
				if err != nil {
					t.Fatal(err)
				}
				ref, _ := fixtures.Float32(t, exp, refName)
				if len(g) != len(ref) {
					t.Errorf("%s: %d values, reference %d", gotName, len(g), len(ref))
					return
				}
				var md, mr float64
				for i := range ref {
					md = math.Max(md, math.Abs(float64(g[i])-float64(ref[i])))
					mr = math.Max(mr, math.Abs(float64(ref[i])))
				}
				if md > tol*mr || math.IsNaN(md) {
					t.Errorf("%s: max|Δ| %.3g, %.3g of max|ref|", gotName, md, md/mr)
				}
			}
			compare("loss", "loss/"+mm.Name, 1e-6)
			n := 0
			for _, name := range exp.Names {
				if strings.HasPrefix(name, "grad/") {
					compare(name, name, 1e-4)
					n++
				}
			}
			// The sparse token-embedding reference: its rows of the dense output.
			for _, name := range exp.Names {
				p, ok := strings.CutPrefix(name, "grad_sparse/")
				if !ok || !strings.HasSuffix(p, "/rows") {
					continue
				}
				p = strings.TrimSuffix(p, "/rows")
				rows, err := exp.Tensor(name).Int64()
				if err != nil {
					t.Fatal(err)
				}
				dense, err := got.Tensor("grad/" + p).Float32()
				if err != nil {
					t.Fatal(err)
				}
				ref, shape := fixtures.Float32(t, exp, "grad_sparse/"+p+"/values")
				w := shape[len(shape)-1]
				var md, mr float64
				for k, r := range rows {
					for c := range w {
						md = math.Max(md, math.Abs(float64(dense[int(r)*w+c]-ref[k*w+c])))
						mr = math.Max(mr, math.Abs(float64(ref[k*w+c])))
					}
				}
				if md > 1e-4*mr {
					t.Errorf("%s: rows differ by %.3g of max|ref|", p, md/mr)
				}
				n++
			}
			if n == 0 {
				t.Error("the fixtures have no gradients to compare")
			}
		})
	}
	if !ran {
		t.Skip("no fixture model has a grad_batch")
	}
}

func TestGradUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"grad", "--model", "x", "--out", "o"}, "no pairs"},
		{[]string{"grad", "--model", "x", "--image", "a.png", "--out", "o"}, "1 images but 0 texts"},
		{[]string{"grad", "--model", "x", "--image", "a.png", "--text", "t"}, "no output"},
	} {
		_, stderr, code := run(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q (want 2 and %q)", tc.args, code, stderr, tc.want)
		}
	}
}
