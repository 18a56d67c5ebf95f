package train

import (
	"path/filepath"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/model"
)

// TestResNetCheckpointLoads checks that a ResNet checkpoint carries its
// BatchNorm running statistics, so goclip (and open_clip) can load it.
func TestResNetCheckpointLoads(t *testing.T) {
	cfg := model.Config{EmbedDim: 16, QuickGELU: true, LayerNormEps: 1e-5,
		Vision: model.VisionConfig{ImageSize: 32, Width: 8, Heads: 4, Layers4: [4]int{1, 1, 1, 1}},
		Text:   model.TextConfig{ContextLength: 8, VocabSize: 600, Width: 32, Heads: 2, Layers: 1}}
	m, err := model.Random(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(Options{BatchSize: 2, AccumFreq: 1, Steps: 1, LR: 1e-3, EmbedDim: cfg.EmbedDim}, []Net{m})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sd, err := SaveCheckpoint(dir, tr, cfg, imageproc.DefaultOptions(32), RunState{Step: 1}, "")
	if err != nil {
		t.Fatal(err)
	}
	f, err := checkpoint.OpenSafetensors(filepath.Join(sd, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Tensor("visual.bn1.running_var") == nil {
		t.Fatal("checkpoint lacks BatchNorm running statistics")
	}
	if _, err := model.New(cfg, f); err != nil {
		t.Fatalf("saved ResNet checkpoint does not load: %v", err)
	}
}
