package cnclip

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unsafe"

	"github.com/goclip/goclip/internal/kernels"
	"github.com/goclip/goclip/internal/model"
	"github.com/goclip/goclip/internal/train"
)

// trainState is the training side of a Model, built on the first Params.
type trainState struct {
	params []*model.Param
	// vision wraps the image tower in a model.Model (with a one-value stub
	// text tower, never run) so that internal/model's ViT training passes
	// and gradient buffers serve it.
	vision      *model.Model
	gTextProj   []float32
	gLogitScale []float32
	txt         model.Arena
	err         error
}

// Params returns every trainable parameter in cn_clip's naming ("module."
// stripped: visual.*, bert.*, text_projection, logit_scale), with Value
// aliasing the live weights and Grad the gradient buffers the training
// passes accumulate into (allocated, zeroed, on the first call; the same
// Params on every call). After an optimiser changes Values, call
// AfterUpdate. It returns nil if the model cannot be trained (see
// EncodeImageTrain's error).
func (m *Model) Params() []*model.Param {
	m.trainOnce.Do(m.buildParams)
	return m.train.params
}

// Param returns the parameter with the given cn_clip name, or nil.
func (m *Model) Param(name string) *model.Param {
	for _, p := range m.Params() {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// ZeroGrad sets every gradient to zero.
func (m *Model) ZeroGrad() {
	for _, p := range m.Params() {
		clear(p.Grad)
	}
}

// AfterUpdate must be called after parameter Values changed: it repacks the
// Linear weights the forward passes multiply by.
func (m *Model) AfterUpdate() { m.Pack() }

func (m *Model) buildParams() {
	// Weights held only packed (bf16 or int8, see UsePrecision) get their
	// float32 form back (the dequantised values) for gradients.
	for _, l := range m.VisionLinears() {
		l.Unpack()
	}
	for _, l := range m.Text.Linears() {
		l.Unpack()
	}
	ts := &m.train
	v := m.Config.Vision
	if v.MLP != 4*v.Width {
		ts.err = fmt.Errorf("cnclip: cannot train a vision MLP of %d for width %d (internal/model's ViT training takes 4×width)", v.MLP, v.Width)
		return
	}
	E := m.Config.EmbedDim
	stubLN := model.LayerNorm{G: []float32{1}, B: []float32{0}, Dim: 1, Eps: 1e-5}
	ts.vision = &model.Model{
		Config: model.Config{
			EmbedDim:     E,
			QuickGELU:    true,
			LayerNormEps: 1e-5,
			Vision:       model.VisionConfig{ImageSize: v.ImageSize, Width: v.Width, Heads: v.Heads, Layers: v.Layers, PatchSize: v.PatchSize},
			Text:         model.TextConfig{ContextLength: 1, VocabSize: 1, Width: 1, Heads: 1},
		},
		Visual: m.Visual,
		Text: &model.TextTransformer{TokenEmbedding: []float32{0}, PosEmbedding: []float32{0}, LNFinal: stubLN,
			Proj: make([]float32, E), Width: 1, Context: 1, Vocab: 1, EmbedDim: E},
	}
	var ps []*model.Param
	for _, p := range ts.vision.Params() {
		if strings.HasPrefix(p.Name, "visual.") {
			ps = append(ps, p)
		}
	}
	ps = append(ps, m.Text.Params("bert.")...)
	ts.gTextProj = make([]float32, len(m.TextProj))
	ts.gLogitScale = make([]float32, 1)
	ps = append(ps,
		&model.Param{Name: "text_projection", Shape: []int{m.Config.Text.Hidden, E}, Value: m.TextProj, Grad: ts.gTextProj},
		&model.Param{Name: "logit_scale", Shape: []int{}, Value: unsafe.Slice(&m.LogitScale, 1), Grad: ts.gLogitScale, NoDecay: true})
	ts.params = ps
}

// trainable builds the training state and reports why the model cannot
// train.
func (m *Model) trainable() error {
	m.Params()
	return m.train.err
}

// EncodeImageTrain runs the image tower on pixels [n, 3, S, S] recording
// its activations, and returns the unnormalised features [n, embed] and
// back. back(dFeat) takes d loss / d features, accumulates every visual.*
// gradient into its Param.Grad and returns d loss / d pixels.
//
// The training passes of one Model must not run concurrently with each
// other (one image pass and one text pass may). feat, dPixels and the
// recorded activations live in buffers the next EncodeImageTrain reuses:
// call back (at most once) before then and copy what must outlive it.
func (m *Model) EncodeImageTrain(pixels []float32, n int) (feat []float32, back func(dFeat []float32) (dPixels []float32), err error) {
	if err := m.trainable(); err != nil {
		return nil, nil, err
	}
	feat, back, err = m.train.vision.EncodeImageTrain(pixels, n)
	if err != nil {
		return nil, nil, fmt.Errorf("cnclip: %w", err)
	}
	return feat, back, nil
}

// EncodeTextTrain runs the text tower on token rows (all of one length,
// normally from Tokenize) recording its activations, and returns the
// unnormalised features [len(tokens), embed] (the final hidden state at
// [CLS] times text_projection) and back, which accumulates the gradients
// of every bert.* parameter and of text_projection. The word-embedding
// gradient only touches the rows of the ids in the batch, never [PAD]'s.
// The buffer rules of EncodeImageTrain apply.
func (m *Model) EncodeTextTrain(tokens [][]int32) (feat []float32, back func(dFeat []float32), err error) {
	if len(tokens) == 0 {
		return nil, nil, errors.New("cnclip: no texts")
	}
	if err := m.trainable(); err != nil {
		return nil, nil, err
	}
	ar := &m.train.txt
	ar.Reset()
	batch, seq := len(tokens), len(tokens[0])
	E, H := m.Config.EmbedDim, m.Config.Text.Hidden
	hidden := ar.Get(batch * seq * H)
	tp, err := m.Text.ForwardTrain(ar, hidden, tokens)
	if err != nil {
		return nil, nil, fmt.Errorf("cnclip: %w", err)
	}
	pooled := ar.Get(batch * H)
	for b := range batch {
		copy(pooled[b*H:(b+1)*H], hidden[b*seq*H:])
	}
	feat = ar.Get(batch * E)
	kernels.MatMul(feat, pooled, m.TextProj, batch, E, H)
	return feat, func(dFeat []float32) {
		if len(dFeat) != len(feat) {
			panic(fmt.Sprintf("cnclip: text feature gradient has %d values, want %d", len(dFeat), len(feat)))
		}
		// feat = pooled · P: dP += pooledᵀ·dFeat, dpooled = dFeat·Pᵀ.
		kernels.Sgemm(true, false, H, E, batch, 1, pooled, H, dFeat, E, 1, m.train.gTextProj, E)
		dh := hidden // the hidden states are not needed any more
		clear(dh)
		for b := range batch {
			kernels.Sgemm(false, true, 1, H, E, 1, dFeat[b*E:], E, m.TextProj, E, 0, dh[b*seq*H:], H)
		}
		m.Text.Backward(ar, tp, dh)
	}, nil
}

// AddLogitScaleGrad accumulates d loss / d exp(logit_scale) (the
// multiplier the loss uses) into the gradient of the log-space logit_scale.
func (m *Model) AddLogitScaleGrad(dScale float32) {
	if m.trainable() != nil {
		return
	}
	m.train.gLogitScale[0] += dScale * float32(math.Exp(float64(m.LogitScale)))
}

// ContrastiveGrad computes cn_clip's training loss on the pairs (image i,
// text i) and its gradients: it zeroes the gradients, runs both towers in
// training mode (deterministic: BERT's dropout is off, as in eval mode),
// normalises the features, forms logits_per_image = s·img·txtᵀ and
// logits_per_text = s·txt·imgᵀ with s = exp(logit_scale), and takes the
// mean of the two cross-entropies against the diagonal (train.ClipLoss,
// the same loss as cn_clip's get_loss without gathering or distillation).
// It backpropagates into every Param.Grad and returns the loss and
// d loss / d pixels (a buffer the next training pass reuses).
func (m *Model) ContrastiveGrad(pixels []float32, tokens [][]int32) (loss float32, dPixels []float32, err error) {
	if len(tokens) == 0 {
		return 0, nil, errors.New("cnclip: empty batch")
	}
	if err := m.trainable(); err != nil {
		return 0, nil, err
	}
	return train.NetContrastiveGrad(m, m.LogitScale, pixels, tokens)
}
