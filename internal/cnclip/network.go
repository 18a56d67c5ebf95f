package cnclip

import (
	"fmt"
	"strings"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/train"
	"github.com/goclip/goclip/internal/wordpiece"
)

// *Model is trained by train.Run like any other network.
var _ train.Network = (*Model)(nil)

// Arch describes the architecture in messages and checkpoints.
func (c Config) Arch() string {
	v, t := c.Vision, c.Text
	return fmt.Sprintf("Chinese-CLIP ViT(patch %d,width %d,layers %d)@%d + BERT(hidden %d,layers %d,intermediate %d), embed %d",
		v.PatchSize, v.Width, v.Layers, v.ImageSize, t.Hidden, t.Layers, t.Intermediate, c.EmbedDim)
}

// Kind returns train.KindChineseCLIP.
func (m *Model) Kind() string { return train.KindChineseCLIP }

// Arch describes the architecture (Config.Arch).
func (m *Model) Arch() string { return m.Config.Arch() }

// Preprocessing returns the image preprocessing the model was loaded with.
func (m *Model) Preprocessing() imageproc.Options { return m.Preprocess }

// Trainable reports why the model cannot be trained (nil if it can).
func (m *Model) Trainable() error { return m.trainable() }

// Captions returns the tokenizer of training captions: cn_clip's training
// data pipeline (_preprocess_text: lower-casing, curly double quotes to
// '"'), then the WordPiece row of ContextLength ([CLS] … [SEP] [PAD]…),
// truncated as cn_clip's tokenize does.
func (m *Model) Captions() train.TokenizeFunc {
	tk, n := m.Tokenizer, m.Config.ContextLength
	return func(caption string) ([]int32, bool, error) {
		return tk.EncodeRow(wordpiece.PreprocessText(caption), n)
	}
}

// StateDict returns every parameter as a float32 tensor under cn_clip's
// names ("module." stripped), in Params order.
func (m *Model) StateDict() []*checkpoint.Tensor {
	var ts []*checkpoint.Tensor
	for _, p := range m.Params() {
		ts = append(ts, checkpoint.FromFloat32(p.Name, p.Shape, p.Value))
	}
	return ts
}

// Replica returns an independent copy of the model (weights, tokenizer,
// preprocessing) for data-parallel training.
func (m *Model) Replica() (train.Net, error) {
	if err := m.trainable(); err != nil {
		return nil, err
	}
	c, err := New(m.Config, checkpoint.NewFile("replica of "+m.Path, m.StateDict()))
	if err != nil {
		return nil, err
	}
	c.Tokenizer, c.VocabFile, c.Preprocess, c.Format, c.Path = m.Tokenizer, m.VocabFile, m.Preprocess, m.Format, m.Path
	return c, nil
}

// referenceNames returns f under cn_clip's names: a state dict read from a
// Hugging Face directory (text_model.*) is renamed, anything else is
// returned as is.
func referenceNames(f *checkpoint.File) (*checkpoint.File, error) {
	for _, n := range f.Names {
		if strings.HasPrefix(n, "text_model.") {
			g, err := fromHF(f)
			if err != nil {
				return nil, err
			}
			dropNonWeights(g, "bert.pooler.")
			return g, nil
		}
	}
	return f, nil
}

// CheckWeights reports, naming each missing, unexpected or mis-shaped
// tensor, why the state dict f (cn_clip or Hugging Face names, as
// checkpoint.Open returns them) does not fit the model.
func (m *Model) CheckWeights(f *checkpoint.File) error {
	g, err := referenceNames(f)
	if err != nil {
		return err
	}
	if err := checkpoint.Validate(g, m.Config.Shapes()); err != nil {
		return fmt.Errorf("cnclip: %s: %w", m.Config.Arch(), err)
	}
	return nil
}

// LoadWeights replaces every parameter by f's tensor of the same name
// (after CheckWeights) and repacks the weights.
func (m *Model) LoadWeights(f *checkpoint.File) error {
	if err := m.CheckWeights(f); err != nil {
		return err
	}
	g, err := referenceNames(f)
	if err != nil {
		return err
	}
	if err := m.trainable(); err != nil {
		return err
	}
	for _, p := range m.Params() {
		v, err := g.Tensor(p.Name).Float32()
		if err != nil {
			return fmt.Errorf("cnclip: %s: %w", f.Path, err)
		}
		copy(p.Value, v)
	}
	m.AfterUpdate()
	return nil
}

// WriteModel writes the model as a Hugging Face ChineseCLIPModel directory
// (WriteHF).
func (m *Model) WriteModel(dir string, pre imageproc.Options, half bool) error {
	return m.WriteHF(dir, pre, half)
}
