package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/model"
)

// Checkpoint file names inside a step directory.
const (
	WeightsFile = "open_clip_model.safetensors"
	ConfigFile  = "open_clip_config.json"
	StateFile   = "train_state.safetensors"
	LatestFile  = "latest" // in the run's checkpoint directory: the newest step directory's name
	stateKey    = "goclip_train_state"
)

// RunState is everything besides weights and optimiser moments that a
// resumed run needs to continue exactly.
type RunState struct {
	Step     int64  `json:"step"`
	AdamStep int64  `json:"adam_step"`
	Cursor   Cursor `json:"cursor"` // data position after the last step
	Seed     uint64 `json:"seed"`
	Replicas int    `json:"replicas"`
	Skipped  int    `json:"skipped"`
	// Truncated counts the captions cut to the context length so far.
	Truncated int       `json:"truncated,omitempty"`
	Arch      string    `json:"arch"`
	Options   Options   `json:"options"`
	Log       []StepLog `json:"log"`
}

// Saved is a checkpoint read back by LoadCheckpoint.
type Saved struct {
	Dir string
	// Kind is the kind of model saved: KindCLIP (an open_clip directory,
	// whose architecture is Config) or KindChineseCLIP (a Hugging Face
	// ChineseCLIPModel directory; Config is zero).
	Kind   string
	Config model.Config
	// Weights is the state dict as checkpoint.Open returns it.
	Weights *checkpoint.File
	Moments *checkpoint.File
	State   RunState
}

// WriteOpenCLIPConfig writes an open_clip_config.json for cfg, with the
// preprocessing mean/std/interpolation of pre.
func WriteOpenCLIPConfig(path string, cfg model.Config, pre imageproc.Options) error {
	v := map[string]any{"image_size": cfg.Vision.ImageSize, "width": cfg.Vision.Width}
	if cfg.Vision.IsResNet() {
		v["layers"] = cfg.Vision.Layers4
		v["head_width"] = cfg.Vision.Width * 32 / cfg.Vision.Heads
	} else {
		v["layers"] = cfg.Vision.Layers
		v["patch_size"] = cfg.Vision.PatchSize
		v["head_width"] = cfg.Vision.Width / cfg.Vision.Heads
	}
	t := cfg.Text
	doc := map[string]any{
		"model_cfg": map[string]any{
			"embed_dim":  cfg.EmbedDim,
			"quick_gelu": cfg.QuickGELU,
			"vision_cfg": v,
			"text_cfg": map[string]any{"context_length": t.ContextLength, "vocab_size": t.VocabSize,
				"width": t.Width, "heads": t.Heads, "layers": t.Layers},
		},
		"preprocess_cfg": map[string]any{
			"mean":          pre.Mean,
			"std":           pre.Std,
			"interpolation": orDefault(pre.Interpolation, "bicubic"),
			"resize_mode":   "shortest",
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(b, '\n'))
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// SaveCheckpoint writes the trainer's state as dir/step_NNNNNN (weights in
// open_clip's safetensors layout with its config, the optimiser moments and
// run state beside them, and a copy of the tokenizer file when tokPath is
// set), then points dir/latest at it. It returns the step directory. The
// trainer's master must be a CLIP model of configuration cfg; Run saves
// any Network through its WriteModel.
func SaveCheckpoint(dir string, t *Trainer, cfg model.Config, pre imageproc.Options, st RunState, tokPath string) (string, error) {
	return saveCheckpoint(dir, t, func(sd string) error { return writeCLIP(sd, t.Nets[0], cfg, pre, false) }, st, tokPath)
}

// saveCheckpoint writes dir/step_NNNNNN: the model through writeModel,
// the tokenizer file at tokPath (with merges.txt beside a vocab.json) when
// set, the optimiser moments and run state; then it points dir/latest at
// it.
func saveCheckpoint(dir string, t *Trainer, writeModel func(dir string) error, st RunState, tokPath string) (string, error) {
	name := fmt.Sprintf("step_%06d", st.Step)
	sd := filepath.Join(dir, name)
	if err := os.MkdirAll(sd, 0o755); err != nil {
		return "", err
	}
	if err := writeModel(sd); err != nil {
		return "", err
	}
	if tokPath != "" {
		if err := copyFile(filepath.Join(sd, filepath.Base(tokPath)), tokPath); err != nil {
			return "", err
		}
		if strings.EqualFold(filepath.Base(tokPath), "vocab.json") {
			if err := copyFile(filepath.Join(sd, "merges.txt"), filepath.Join(filepath.Dir(tokPath), "merges.txt")); err != nil {
				return "", err
			}
		}
	}
	st.AdamStep = t.Optim.Step
	meta, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	var moments []*checkpoint.Tensor
	for i, p := range t.Optim.Params {
		moments = append(moments, checkpoint.FromFloat32("exp_avg/"+p.Name, p.Shape, t.Optim.M[i]), checkpoint.FromFloat32("exp_avg_sq/"+p.Name, p.Shape, t.Optim.V[i]))
	}
	if err := checkpoint.WriteSafetensors(filepath.Join(sd, StateFile), moments, map[string]string{stateKey: string(meta)}); err != nil {
		return "", err
	}
	if err := WriteFileAtomic(filepath.Join(dir, LatestFile), []byte(name+"\n")); err != nil {
		return "", err
	}
	return sd, nil
}

// LoadCheckpoint reads a checkpoint written by SaveCheckpoint: path is a
// step directory or a run's checkpoint directory (its latest step is used).
func LoadCheckpoint(path string) (*Saved, error) {
	if b, err := os.ReadFile(filepath.Join(path, LatestFile)); err == nil {
		name := strings.TrimSpace(string(b))
		if name == "" || strings.ContainsAny(name, `/\`) {
			return nil, fmt.Errorf("%s: bad %s file", path, LatestFile)
		}
		path = filepath.Join(path, name)
	}
	s := &Saved{Dir: path, Kind: KindCLIP}
	var err error
	hfConfig := filepath.Join(path, "config.json")
	if _, serr := os.Stat(filepath.Join(path, ConfigFile)); serr != nil && isChineseCLIPConfig(hfConfig) {
		s.Kind = KindChineseCLIP
		if s.Weights, err = checkpoint.Open(path); err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
	} else {
		if s.Config, _, err = model.ReadOpenCLIPConfig(filepath.Join(path, ConfigFile)); err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
		if s.Weights, err = checkpoint.OpenSafetensors(filepath.Join(path, WeightsFile)); err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
	}
	if s.Moments, err = checkpoint.OpenSafetensors(filepath.Join(path, StateFile)); err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	meta, ok := s.Moments.Metadata[stateKey]
	if !ok {
		return nil, fmt.Errorf("resume: %s has no %s metadata: not a goclip training checkpoint", filepath.Join(path, StateFile), stateKey)
	}
	if err := json.Unmarshal([]byte(meta), &s.State); err != nil {
		return nil, fmt.Errorf("resume: %s: bad run state: %v", filepath.Join(path, StateFile), err)
	}
	return s, nil
}

// isChineseCLIPConfig reports whether path is a Hugging Face config.json
// of model_type chinese_clip.
func isChineseCLIPConfig(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var c struct {
		ModelType string `json:"model_type"`
	}
	return json.Unmarshal(b, &c) == nil && c.ModelType == "chinese_clip"
}

// arch describes the saved architecture.
func (s *Saved) arch() string {
	if s.Kind == KindCLIP {
		return s.Config.Arch()
	}
	if s.State.Arch != "" {
		return s.State.Arch
	}
	return s.Kind
}

// CheckArch returns a clear error when the checkpoint does not hold a CLIP
// model of architecture cfg.
func (s *Saved) CheckArch(cfg model.Config) error {
	if s.Kind != KindCLIP {
		return fmt.Errorf("resume: checkpoint %s holds a %s model (%s), not the CLIP %s being trained", s.Dir, s.Kind, s.arch(), cfg.Arch())
	}
	if err := cfg.CheckShapes(s.Weights); err != nil {
		return fmt.Errorf("resume: checkpoint %s holds a %s model, not the %s being trained: %w", s.Dir, s.Config.Arch(), cfg.Arch(), err)
	}
	return nil
}

// Check returns a clear error when the checkpoint does not fit net: another
// kind of model, or other shapes (the error names the tensors).
func (s *Saved) Check(net Network) error {
	if s.Kind != net.Kind() {
		return fmt.Errorf("resume: checkpoint %s holds a %s model (%s), not the %s model (%s) being trained", s.Dir, s.Kind, s.arch(), net.Kind(), net.Arch())
	}
	if err := net.CheckWeights(s.Weights); err != nil {
		return fmt.Errorf("resume: checkpoint %s holds a %s model, not the %s being trained: %w", s.Dir, s.arch(), net.Arch(), err)
	}
	return nil
}

// Restore loads the checkpoint's optimiser moments and step into t, whose
// master must already hold the checkpoint's weights.
func (s *Saved) Restore(t *Trainer) error {
	for i, p := range t.Optim.Params {
		for _, mv := range []struct {
			name string
			dst  []float32
		}{{"exp_avg/" + p.Name, t.Optim.M[i]}, {"exp_avg_sq/" + p.Name, t.Optim.V[i]}} {
			ten := s.Moments.Tensor(mv.name)
			if ten == nil {
				return fmt.Errorf("resume: %s lacks optimiser state %q (were other towers locked?)", s.Dir, mv.name)
			}
			v, err := ten.Float32()
			if err != nil {
				return fmt.Errorf("resume: %s: %w", s.Dir, err)
			}
			if len(v) != len(mv.dst) {
				return fmt.Errorf("resume: %s: %s has %d values, want %d", s.Dir, mv.name, len(v), len(mv.dst))
			}
			copy(mv.dst, v)
		}
	}
	t.Optim.Step = s.State.AdamStep
	t.Step = s.State.Step
	return nil
}

// F16Tensors converts F32 tensors to IEEE half precision (round to
// nearest even), for compact distribution.
func F16Tensors(ts []*checkpoint.Tensor) ([]*checkpoint.Tensor, error) {
	var out []*checkpoint.Tensor
	for _, t := range ts {
		v, err := t.Float32()
		if err != nil {
			return nil, err
		}
		b := make([]byte, 2*len(v))
		for i, x := range v {
			h := FloatToHalf(x)
			b[2*i], b[2*i+1] = byte(h), byte(h>>8)
		}
		out = append(out, &checkpoint.Tensor{Name: t.Name, DType: checkpoint.F16, Shape: t.Shape, Data: b})
	}
	return out, nil
}

// FloatToHalf converts f to IEEE 754 binary16, rounding to nearest even;
// overflow gives ±Inf and NaN stays NaN.
func FloatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23&0xff) - 127 + 15
	mant := b & 0x7fffff
	switch {
	case b&0x7fffffff > 0x7f800000: // NaN
		return sign | 0x7e00
	case exp >= 31: // overflow or Inf
		return sign | 0x7c00
	case exp <= 0: // subnormal or zero
		if exp < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - exp)
		h := mant >> shift
		rem := mant & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(exp)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, which is still correct
	}
	return sign | uint16(h)
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	b, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	return WriteFileAtomic(dst, b)
}

// WriteFileAtomic writes b to path through a temporary file in the same
// folder renamed into place, so a crash never leaves a half-written file.
func WriteFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// PruneCheckpoints removes all but the newest keep step directories of
// dir (never the one latest names).
func PruneCheckpoints(dir string, keep int) error {
	if keep <= 0 {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var steps []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "step_") {
			steps = append(steps, e.Name())
		}
	}
	sort.Strings(steps)
	var errs []error
	for len(steps) > keep {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, steps[0])))
		steps = steps[1:]
	}
	return errors.Join(errs...)
}
