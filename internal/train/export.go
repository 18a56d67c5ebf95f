package train

import (
	"path/filepath"
	"strings"
	"time"

	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/model"
)

// Export writes m as a loadable model directory: open_clip_model.safetensors
// (F16 when half is set, else F32), open_clip_config.json and, when tokPath
// is set, a copy of the tokenizer (vocab.json with its merges.txt, or the
// BPE file).
func Export(dir string, m *model.Model, pre imageproc.Options, tokPath string, half bool) error {
	return ExportNetwork(dir, CLIP(m), pre, tokPath, half)
}

// ExportNetwork writes net as a loadable model directory in its own format
// (Network.WriteModel: open_clip files for CLIP, a Hugging Face
// ChineseCLIPModel directory for Chinese-CLIP) and, when tokPath is set, a
// copy of that tokenizer file (with merges.txt beside a vocab.json).
func ExportNetwork(dir string, net Network, pre imageproc.Options, tokPath string, half bool) error {
	if err := net.WriteModel(dir, pre, half); err != nil {
		return err
	}
	if tokPath != "" {
		if err := copyFile(filepath.Join(dir, filepath.Base(tokPath)), tokPath); err != nil {
			return err
		}
		if strings.EqualFold(filepath.Base(tokPath), "vocab.json") {
			return copyFile(filepath.Join(dir, "merges.txt"), filepath.Join(filepath.Dir(tokPath), "merges.txt"))
		}
	}
	return nil
}

// ForwardThroughput measures inference samples/s (both towers, one batch
// of pixels and tokens run reps times), for comparison with training
// throughput.
func ForwardThroughput(m Network, b *Batch, reps int) float64 {
	dim := m.EmbedDim()
	img := make([]float32, b.N*dim)
	txt := make([]float32, b.N*dim)
	start := time.Now()
	for range reps {
		m.EncodeImage(img, b.Pixels, b.N, nil)
		if err := m.EncodeText(txt, b.Tokens, nil); err != nil {
			return 0
		}
	}
	return float64(reps*b.N) / time.Since(start).Seconds()
}
