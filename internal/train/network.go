package train

import (
	"fmt"
	"path/filepath"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/model"
	"github.com/goclip/goclip/internal/tokenizer"
)

// Model kinds, as Network.Kind and Saved.Kind report them.
const (
	KindCLIP        = "clip"         // OpenAI/open_clip CLIP (internal/model)
	KindChineseCLIP = "chinese-clip" // Chinese-CLIP (internal/cnclip)
)

// Network is a model Run can train: a Net that also describes its
// architecture, makes replicas of itself and reads and writes its own
// checkpoints. CLIP wraps a *model.Model; *cnclip.Model implements it
// directly.
type Network interface {
	Net
	// Kind is KindCLIP or KindChineseCLIP; a checkpoint resumes only into
	// a network of its kind.
	Kind() string
	// Arch describes the architecture in messages (and is recorded in
	// checkpoints).
	Arch() string
	EmbedDim() int
	ImageSize() int
	ContextLength() int
	// Preprocessing is the image preprocessing used when RunConfig.Pre is
	// left zero.
	Preprocessing() imageproc.Options
	// Replica returns an independent copy holding the same weights.
	Replica() (Net, error)
	// CheckWeights reports, naming the tensors, why a checkpoint's state
	// dict (as checkpoint.Open returns it) does not fit this network.
	CheckWeights(f *checkpoint.File) error
	// LoadWeights replaces every parameter by the checkpoint's tensor of
	// the same name (after CheckWeights) and calls AfterUpdate.
	LoadWeights(f *checkpoint.File) error
	// WriteModel writes a directory the network's loader reads back
	// (weights, float16 when half is set, configuration, tokenizer files
	// the network knows of); pre's mean/std are recorded where the format
	// has room for them. dir exists.
	WriteModel(dir string, pre imageproc.Options, half bool) error
}

// TokenizeFunc turns a training caption into one token row of the
// network's context length, reporting whether the caption had to be
// truncated to fit. An error stops the run.
type TokenizeFunc func(caption string) (row []int32, truncated bool, err error)

// BPECaptions tokenizes captions with CLIP's BPE tokenizer at the given
// context length (truncating like clip.tokenize(truncate=True)).
func BPECaptions(tok *tokenizer.Tokenizer, contextLength int) TokenizeFunc {
	return func(caption string) ([]int32, bool, error) {
		ids, truncated := tok.Tokenize(caption, contextLength)
		return ids, truncated, nil
	}
}

// CLIP returns m as a Network. Its checkpoints are open_clip directories:
// open_clip_model.safetensors (parameters and buffers) and
// open_clip_config.json.
func CLIP(m *model.Model) Network { return clipNetwork{m} }

type clipNetwork struct{ *model.Model }

func (c clipNetwork) Kind() string       { return KindCLIP }
func (c clipNetwork) Arch() string       { return c.Config.Arch() }
func (c clipNetwork) EmbedDim() int      { return c.Config.EmbedDim }
func (c clipNetwork) ImageSize() int     { return c.Config.Vision.ImageSize }
func (c clipNetwork) ContextLength() int { return c.Config.Text.ContextLength }

func (c clipNetwork) Preprocessing() imageproc.Options {
	return imageproc.DefaultOptions(c.Config.Vision.ImageSize)
}

func (c clipNetwork) Replica() (Net, error) {
	return model.New(c.Config, checkpoint.NewFile("replica of "+c.Config.Arch(), c.StateDict()))
}

func (c clipNetwork) CheckWeights(f *checkpoint.File) error { return c.Config.CheckShapes(f) }

func (c clipNetwork) LoadWeights(f *checkpoint.File) error {
	if err := c.CheckWeights(f); err != nil {
		return err
	}
	for _, p := range c.Params() {
		v, err := f.Tensor(p.Name).Float32()
		if err != nil {
			return err
		}
		copy(p.Value, v)
	}
	c.AfterUpdate()
	return nil
}

func (c clipNetwork) WriteModel(dir string, pre imageproc.Options, half bool) error {
	return writeCLIP(dir, c.Model, c.Config, pre, half)
}

// writeCLIP writes n's weights (its StateDict when it has one: parameters
// and buffers such as BatchNorm running statistics; else its Params) as
// open_clip_model.safetensors and cfg as open_clip_config.json.
func writeCLIP(dir string, n Net, cfg model.Config, pre imageproc.Options, half bool) error {
	var weights []*checkpoint.Tensor
	if sd, ok := n.(interface{ StateDict() []*checkpoint.Tensor }); ok {
		weights = sd.StateDict()
	} else {
		for _, p := range n.Params() {
			weights = append(weights, checkpoint.FromFloat32(p.Name, p.Shape, p.Value))
		}
	}
	if half {
		var err error
		if weights, err = F16Tensors(weights); err != nil {
			return err
		}
	}
	if err := checkpoint.WriteSafetensors(filepath.Join(dir, WeightsFile), weights, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	return WriteOpenCLIPConfig(filepath.Join(dir, ConfigFile), cfg, pre)
}

// replicate returns n nets holding net's weights: net itself first.
func replicate(net Network, n int) ([]Net, error) {
	nets := []Net{net}
	for range n - 1 {
		c, err := net.Replica()
		if err != nil {
			return nil, fmt.Errorf("train: replica of %s: %w", net.Arch(), err)
		}
		nets = append(nets, c)
	}
	return nets, nil
}
