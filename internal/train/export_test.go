package train

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/model"
)

// TestExportRoundTrip writes a model in F32 and F16 and loads both back.
func TestExportRoundTrip(t *testing.T) {
	m := tinyModel(t, 4)
	for _, half := range []bool{false, true} {
		dir := t.TempDir()
		if err := Export(dir, m, imageproc.DefaultOptions(16), "", half); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := model.ReadOpenCLIPConfig(filepath.Join(dir, ConfigFile))
		if err != nil {
			t.Fatal(err)
		}
		if cfg != m.Config {
			t.Fatalf("config %+v, want %+v", cfg, m.Config)
		}
		f, err := checkpoint.OpenSafetensors(filepath.Join(dir, WeightsFile))
		if err != nil {
			t.Fatal(err)
		}
		m2, err := model.New(cfg, f)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		tol := 0.0
		if half {
			tol = 1e-3
		}
		for _, p := range m.Params() {
			q := m2.Param(p.Name)
			for i := range p.Value {
				if d := math.Abs(float64(p.Value[i] - q.Value[i])); d > tol*math.Max(1, math.Abs(float64(p.Value[i]))) {
					t.Fatalf("half=%v: %s[%d] = %v, want %v", half, p.Name, i, q.Value[i], p.Value[i])
				}
			}
		}
	}
}
