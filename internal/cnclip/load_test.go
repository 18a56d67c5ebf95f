package cnclip

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
)

// hfCopy makes a copy of a fixture HF directory whose config.json is
// edited by edit (the weights are linked, not copied).
func hfCopy(t *testing.T, src string, edit func(cfg map[string]any)) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		p := filepath.Join(src, e.Name())
		if e.Name() == "config.json" {
			var cfg map[string]any
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			edit(cfg)
			b, _ = json.Marshal(cfg)
			if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.Symlink(p, filepath.Join(dst, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestConfigsAgree(t *testing.T) {
	dir, man := readManifest(t)
	for _, mod := range man.Models {
		md := filepath.Join(dir, mod.Name)
		files := findCNConfigs(md)
		if len(files) != 2 {
			t.Fatalf("%s: cn_clip model configs not found", md)
		}
		cn, err := ReadCNConfigs(files...)
		if err != nil {
			t.Fatal(err)
		}
		hf, err := ReadHFConfig(filepath.Join(md, "hf", "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		if cn != hf {
			t.Errorf("%s: cn_clip JSONs give %+v, config.json %+v", mod.Name, cn, hf)
		}
		f, err := checkpoint.Open(filepath.Join(md, "cn_clip.pt"))
		if err != nil {
			t.Fatal(err)
		}
		inf, err := InferConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		// Heads are a guess when inferred; the rest must agree.
		inf.Vision.Heads, inf.Text.Heads = cn.Vision.Heads, cn.Text.Heads
		if inf != cn {
			t.Errorf("%s: inferred %+v, configured %+v", mod.Name, inf, cn)
		}
	}
}

func TestHFConfigDictWins(t *testing.T) {
	dir, man := readManifest(t)
	src := filepath.Join(dir, man.Models[0].Name, "hf")
	d := hfCopy(t, src, func(c map[string]any) {
		tc := map[string]any{}
		for k, v := range c["text_config"].(map[string]any) {
			tc[k] = v
		}
		c["text_config_dict"] = tc
		c["text_config"] = map[string]any{"hidden_size": 7} // stale, ignored
	})
	if _, err := Load(d, Options{}); err != nil {
		t.Errorf("text_config_dict not preferred: %v", err)
	}
}

func TestLoadRejects(t *testing.T) {
	dir, man := readManifest(t)
	mod := man.Models[0].Name
	src := filepath.Join(dir, mod, "hf")
	vocab := filepath.Join(dir, "tokenizer", "vocab.txt")

	// Text tower that does not match config.json: the error names the tensor.
	d := hfCopy(t, src, func(c map[string]any) {
		tc := c["text_config"].(map[string]any)
		tc["intermediate_size"] = tc["intermediate_size"].(float64) * 2
	})
	_, err := Load(d, Options{})
	t.Logf("HF text tower mismatch: %v", err)
	if err == nil || !strings.Contains(err.Error(), "bert.encoder.layer.0.intermediate.dense.weight") {
		t.Errorf("HF text tower mismatch: %v", err)
	}
	d = hfCopy(t, src, func(c map[string]any) {
		tc := c["text_config"].(map[string]any)
		tc["num_hidden_layers"] = tc["num_hidden_layers"].(float64) + 1
	})
	if _, err := Load(d, Options{}); err == nil || !strings.Contains(err.Error(), "missing tensor") {
		t.Errorf("HF extra layer: %v", err)
	}
	d = hfCopy(t, src, func(c map[string]any) {
		c["text_config"].(map[string]any)["hidden_act"] = "gelu_new"
	})
	if _, err := Load(d, Options{}); err == nil || !strings.Contains(err.Error(), "gelu_new") {
		t.Errorf("HF gelu_new: %v", err)
	}

	// cn_clip checkpoint with a text config that does not match.
	files := findCNConfigs(filepath.Join(dir, mod))
	var textCfg map[string]any
	b, _ := os.ReadFile(files[1])
	if err := json.Unmarshal(b, &textCfg); err != nil {
		t.Fatal(err)
	}
	textCfg["text_hidden_size"] = textCfg["text_hidden_size"].(float64) * 2
	bad := filepath.Join(t.TempDir(), "text.json")
	b, _ = json.Marshal(textCfg)
	os.WriteFile(bad, b, 0o644)
	pt := filepath.Join(dir, mod, "cn_clip.pt")
	_, err = Load(pt, Options{ConfigFiles: []string{files[0], bad}, Vocab: vocab})
	t.Logf("cn_clip text tower mismatch: %v", err)
	if err == nil || !strings.Contains(err.Error(), "bert.embeddings.word_embeddings.weight") {
		t.Errorf("cn_clip text tower mismatch: %v", err)
	}

	// No vocabulary beside a cn_clip checkpoint.
	if _, err := Load(pt, Options{}); err == nil || !strings.Contains(err.Error(), "vocab") {
		t.Errorf("missing vocab: %v", err)
	}
	// A vocabulary without [SEP].
	v, _ := os.ReadFile(vocab)
	noSep := filepath.Join(t.TempDir(), "vocab.txt")
	os.WriteFile(noSep, []byte(strings.Replace(string(v), "[SEP]\n", "[SEPX]\n", 1)), 0o644)
	if _, err := Load(pt, Options{Vocab: noSep}); err == nil || !strings.Contains(err.Error(), "[SEP]") {
		t.Errorf("vocab without [SEP]: %v", err)
	}
	// A vocabulary of the wrong size.
	short := filepath.Join(t.TempDir(), "vocab.txt")
	os.WriteFile(short, []byte("[PAD]\n[UNK]\n[CLS]\n[SEP]\n"), 0o644)
	if _, err := Load(pt, Options{Vocab: short}); err == nil || !strings.Contains(err.Error(), "4 tokens") {
		t.Errorf("short vocab: %v", err)
	}
	// Not a checkpoint.
	if _, err := Load(vocab, Options{Vocab: vocab}); err == nil {
		t.Error("vocab.txt loaded as a checkpoint")
	}
}

func TestTruncationReported(t *testing.T) {
	dir, man := readManifest(t)
	m, err := Load(filepath.Join(dir, man.Models[0].Name, "hf"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("猫", m.ContextLength())
	rows, trunc, err := m.Tokenize([]string{long, "猫"})
	if err != nil {
		t.Fatal(err)
	}
	if !trunc[0] || trunc[1] {
		t.Errorf("truncated = %v, want [true false]", trunc)
	}
	if got := rows[0][m.ContextLength()-1]; got != m.Tokenizer.Vocab.SEP {
		t.Errorf("truncated row ends with %d, want [SEP]", got)
	}
	out := make([]float32, 2*m.EmbedDim())
	if err := m.EncodeText(out, rows, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.EncodeText(out, [][]int32{make([]int32, m.Config.Text.MaxPositions+1)}, nil); err == nil {
		t.Error("row longer than the positions accepted")
	}
}

func TestLoadDirWithPT(t *testing.T) {
	dir, man := readManifest(t)
	m, err := Load(filepath.Join(dir, man.Models[0].Name), Options{Vocab: filepath.Join(dir, "tokenizer", "vocab.txt")})
	if err != nil {
		t.Fatal(err)
	}
	if m.Format != "cn_clip" {
		t.Errorf("format %q, want cn_clip", m.Format)
	}
	if _, err := Load(t.TempDir(), Options{}); err == nil {
		t.Error("empty directory accepted")
	}
}

func TestConcurrentEncode(t *testing.T) {
	dir, man := readManifest(t)
	m, err := Load(filepath.Join(dir, man.Models[0].Name, "hf"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	rows, _, err := m.Tokenize([]string{"一只猫的照片", "a photo of a dog", ""})
	if err != nil {
		t.Fatal(err)
	}
	E := m.EmbedDim()
	want := make([]float32, len(rows)*E)
	if err := m.EncodeText(want, rows, nil); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			got := make([]float32, len(rows)*E)
			for range 5 {
				if err := m.EncodeText(got, rows, nil); err != nil {
					errs <- err
					return
				}
				if maxAbs(got, want) != 0 {
					errs <- fmt.Errorf("concurrent EncodeText differs by %g", maxAbs(got, want))
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
