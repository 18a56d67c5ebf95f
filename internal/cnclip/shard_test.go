package cnclip

import (
	"math"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/goclip/goclip/internal/fixtures"
)

// TestImageBatchShards checks that a batch of images split over the
// pool's threads (model.EncodeImageBatch) gives exactly the features of
// one pass, for even and uneven splits.
func TestImageBatchShards(t *testing.T) {
	dir := fixtures.CNDir(t)
	var man gradManifest
	fixtures.ReadJSON(t, filepath.Join(dir, "manifest.json"), &man)
	exp := fixtures.Expected(t, dir)
	if len(man.Models) == 0 || len(available(man.Models[0].Files)) == 0 || len(man.Images) == 0 {
		t.Skip("no loadable model")
	}
	mod := man.Models[0]
	m := available(mod.Files)[0].load(t, dir, mod.Name)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, batch := range []int{2, 3, 6} { // 3 and 6 split at 3 threads
		var pixels []float32
		for i := range batch {
			p, _ := fixtures.Float32(t, exp, "pixels/"+man.Images[i%len(man.Images)].Name)
			pixels = append(pixels, p...)
		}
		var out [2][]float32
		for i, threads := range []int{1, 3} {
			runtime.GOMAXPROCS(threads)
			out[i] = make([]float32, batch*m.EmbedDim())
			m.EncodeImage(out[i], pixels, batch, nil)
		}
		for i := range out[0] {
			if math.Float32bits(out[0][i]) != math.Float32bits(out[1][i]) {
				t.Fatalf("batch %d: element %d: %v on 1 thread, %v on 3", batch, i, out[0][i], out[1][i])
			}
		}
	}
}
