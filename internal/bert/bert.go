// Package bert is the BERT text encoder of Chinese-CLIP (cn_clip's
// BertModel without its pooler, Hugging Face's ChineseCLIPTextModel):
// word + position + token-type embeddings, LayerNorm, then post-LN
// transformer layers with exact (erf) GELU and an attention mask over the
// [PAD] tokens.
package bert

import (
	"fmt"
	"math"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/kernels"
	"github.com/goclip/goclip/internal/model"
)

// Config describes a BERT encoder's shapes.
type Config struct {
	VocabSize    int     `json:"vocab_size"`
	Hidden       int     `json:"hidden_size"`
	Layers       int     `json:"num_hidden_layers"`
	Heads        int     `json:"num_attention_heads"`
	Intermediate int     `json:"intermediate_size"`
	MaxPositions int     `json:"max_position_embeddings"`
	TypeVocab    int     `json:"type_vocab_size"`
	LayerNormEps float32 `json:"layer_norm_eps"`
	// PadID is the [PAD] token id: positions holding it are masked out as
	// attention keys (cn_clip: tokenizer.vocab['[PAD]'], 0).
	PadID int32 `json:"pad_token_id"`
}

// Validate checks that the shapes are usable.
func (c Config) Validate() error {
	switch {
	case c.VocabSize <= 0 || c.Hidden <= 0 || c.Layers < 0 || c.Intermediate <= 0 || c.MaxPositions <= 0 || c.TypeVocab <= 0:
		return fmt.Errorf("invalid BERT configuration %+v: sizes must be positive", c)
	case c.Heads <= 0 || c.Hidden%c.Heads != 0:
		return fmt.Errorf("invalid BERT configuration: hidden size %d is not divisible into %d heads", c.Hidden, c.Heads)
	case c.PadID < 0 || int(c.PadID) >= c.VocabSize:
		return fmt.Errorf("invalid BERT configuration: pad id %d outside the vocabulary of %d", c.PadID, c.VocabSize)
	case !(c.LayerNormEps > 0):
		return fmt.Errorf("invalid BERT configuration: LayerNorm eps %g", c.LayerNormEps)
	}
	return nil
}

// Linear is y = x·Wᵀ + b with W stored [Out, In] as in PyTorch; Pack must
// be called before Forward (and again after W changes).
type Linear struct {
	W, B    []float32
	In, Out int
	packed  *kernels.PackedB
}

// Pack packs W into the GEMM microkernel's layout. Without W (a weight
// held only packed, see UsePrecision) it does nothing.
func (l *Linear) Pack() {
	if l.W == nil && l.packed != nil {
		return
	}
	l.packed = kernels.PackLinear(l.W, l.Out, l.In)
}

// Unpack sets W from the packed weight if W is not held (see
// UsePrecision), and returns W.
func (l *Linear) Unpack() []float32 {
	if l.W == nil && l.packed != nil {
		l.W = l.packed.Unpack()
	}
	return l.W
}

// UsePrecision converts the packed weight to precision p (model.BF16 or
// model.Int8; FP32 leaves it) and drops W: for inference only.
func (l *Linear) UsePrecision(p model.Precision) {
	if p != model.BF16 && p != model.Int8 {
		return
	}
	if l.packed == nil {
		l.Pack()
	}
	l.packed = p.Convert(l.packed)
	l.W = nil
}

// Forward computes rows outputs x·Wᵀ + b into y.
func (l *Linear) Forward(y, x []float32, rows int) { l.forward(y, x, rows, kernels.EpiNone) }

func (l *Linear) forward(y, x []float32, rows int, epi kernels.Epilogue) {
	if rows == 0 {
		return
	}
	if l.packed == nil {
		panic("bert: Linear used before Pack")
	}
	kernels.LinearPacked(y[:rows*l.Out], x[:rows*l.In], l.packed, l.B, rows, epi)
}

// Layer is one post-LN BERT layer:
// a = LN(h + dense(attn(h))); h' = LN(a + output(gelu(intermediate(a)))).
type Layer struct {
	// QKV holds the query, key and value Linears stacked along the output
	// dimension ([3·hidden, hidden]).
	QKV          Linear
	AttnOut      Linear
	AttnLN       model.LayerNorm
	Intermediate Linear
	Output       Linear
	OutLN        model.LayerNorm
}

// Encoder is a BERT encoder without pooler.
type Encoder struct {
	Config Config
	// Embedding tables, row-major [rows, hidden].
	WordEmb, PosEmb, TypeEmb []float32
	EmbLN                    model.LayerNorm
	Layers                   []Layer

	train trainState // gradients and Params (see Params)
}

// Linears returns every Linear of the encoder.
func (e *Encoder) Linears() []*Linear {
	var ls []*Linear
	for i := range e.Layers {
		l := &e.Layers[i]
		ls = append(ls, &l.QKV, &l.AttnOut, &l.Intermediate, &l.Output)
	}
	return ls
}

// UsePrecision converts every Linear weight to precision p (see
// Linear.UsePrecision).
func (e *Encoder) UsePrecision(p model.Precision) {
	for _, l := range e.Linears() {
		l.UsePrecision(p)
	}
}

// Pack packs every Linear (New does it).
func (e *Encoder) Pack() {
	for _, l := range e.Linears() {
		l.Pack()
	}
}

// Forward runs the encoder on token rows (all of the same length, at most
// MaxPositions; token type 0 everywhere) and writes the final hidden states
// [len(ids), seq, hidden] into hidden. Positions holding PadID are masked
// as attention keys with -10000, as cn_clip does. trace, if not nil,
// receives "text/embeddings_sum", "text/embeddings",
// "text/layer0_attention" and "text/layer0".
func (e *Encoder) Forward(ar *model.Arena, hidden []float32, ids [][]int32, trace model.Tracer) error {
	c := e.Config
	batch := len(ids)
	if batch == 0 {
		return nil
	}
	seq := len(ids[0])
	if seq == 0 || seq > c.MaxPositions {
		return fmt.Errorf("bert: token rows of length %d, the model takes 1 to %d positions", seq, c.MaxPositions)
	}
	H := c.Hidden
	rows := batch * seq
	if len(hidden) < rows*H {
		return fmt.Errorf("bert: output holds %d values, want %d", len(hidden), rows*H)
	}
	x := hidden[:rows*H]
	mask := ar.Get(rows)
	if err := e.embed(x, mask, ids); err != nil {
		return err
	}
	if trace != nil {
		trace("text/embeddings_sum", x, []int{batch, seq, H})
	}
	e.EmbLN.Forward(x, x, rows)
	if trace != nil {
		trace("text/embeddings", x, []int{batch, seq, H})
	}
	qkv := ar.Get(rows * 3 * H)
	ctx := ar.Get(rows * H)
	scores := ar.Get(batch * c.Heads * seq * seq)
	a := ar.Get(rows * H)
	m := ar.Get(rows * c.Intermediate)
	for i := range e.Layers {
		l := &e.Layers[i]
		l.QKV.Forward(qkv, x, rows)
		attend(ctx, qkv, scores, mask, batch, seq, H, c.Heads)
		copy(a, x)
		l.AttnOut.forward(a, ctx, rows, kernels.EpiResidual)
		l.AttnLN.Forward(a, a, rows)
		if i == 0 && trace != nil {
			trace("text/layer0_attention", a, []int{batch, seq, H})
		}
		l.Intermediate.forward(m, a, rows, kernels.EpiGELU)
		copy(x, a)
		l.Output.forward(x, m, rows, kernels.EpiResidual)
		l.OutLN.Forward(x, x, rows)
		if i == 0 && trace != nil {
			trace("text/layer0", x, []int{batch, seq, H})
		}
	}
	return nil
}

// attend computes, per batch item and head, softmax(q·kᵀ/√d + mask)·v from
// the stacked projections qkv [batch·seq, 3w] into ctx [batch·seq, w];
// mask [batch·seq] is added to every query's score of that key.
func attend(ctx, qkv, scores, mask []float32, batch, seq, w, heads int) {
	hd := w / heads
	scale := float32(1 / math.Sqrt(float64(hd)))
	kernels.Parallel(batch*heads, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			b, h := t/heads, t%heads
			sc := scores[t*seq*seq : (t+1)*seq*seq]
			base := qkv[b*seq*3*w:]
			kernels.Sgemm(false, true, seq, seq, hd, scale, base[h*hd:], 3*w, base[w+h*hd:], 3*w, 0, sc, seq)
			mk := mask[b*seq : (b+1)*seq]
			for i := range seq {
				row := sc[i*seq : (i+1)*seq]
				for j, v := range mk {
					row[j] += v
				}
			}
			kernels.SoftmaxRows(sc, seq, seq)
			kernels.Sgemm(false, false, seq, hd, seq, 1, sc, seq, base[2*w+h*hd:], 3*w, 0, ctx[b*seq*w+h*hd:], w)
		}
	})
}

// Shapes returns the tensor names (under prefix, e.g. "bert.") and shapes
// an encoder of this configuration has.
func (c Config) Shapes(prefix string) map[string][]int {
	H, I := c.Hidden, c.Intermediate
	s := map[string][]int{
		prefix + "embeddings.word_embeddings.weight":       {c.VocabSize, H},
		prefix + "embeddings.position_embeddings.weight":   {c.MaxPositions, H},
		prefix + "embeddings.token_type_embeddings.weight": {c.TypeVocab, H},
		prefix + "embeddings.LayerNorm.weight":             {H},
		prefix + "embeddings.LayerNorm.bias":               {H},
	}
	for i := range c.Layers {
		p := fmt.Sprintf("%sencoder.layer.%d.", prefix, i)
		for _, n := range []string{"query", "key", "value"} {
			s[p+"attention.self."+n+".weight"] = []int{H, H}
			s[p+"attention.self."+n+".bias"] = []int{H}
		}
		s[p+"attention.output.dense.weight"] = []int{H, H}
		s[p+"attention.output.dense.bias"] = []int{H}
		s[p+"attention.output.LayerNorm.weight"] = []int{H}
		s[p+"attention.output.LayerNorm.bias"] = []int{H}
		s[p+"intermediate.dense.weight"] = []int{I, H}
		s[p+"intermediate.dense.bias"] = []int{I}
		s[p+"output.dense.weight"] = []int{H, I}
		s[p+"output.dense.bias"] = []int{H}
		s[p+"output.LayerNorm.weight"] = []int{H}
		s[p+"output.LayerNorm.bias"] = []int{H}
	}
	return s
}

// New builds an encoder from the tensors named prefix+<BERT name> in f
// (cn_clip: "bert.", after mapping Hugging Face's "text_model." to it),
// checking every tensor's presence and shape against cfg first; the error
// names the first offending tensor. Other tensors in f are ignored.
func New(cfg Config, f *checkpoint.File, prefix string) (*Encoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	want := cfg.Shapes(prefix)
	sub := &checkpoint.File{Path: f.Path, Tensors: map[string]*checkpoint.Tensor{}}
	for name := range want {
		if t := f.Tensor(name); t != nil {
			sub.Tensors[name] = t
		}
	}
	if err := checkpoint.Validate(sub, want); err != nil {
		return nil, fmt.Errorf("text tower does not match its configuration (hidden %d, %d layers, intermediate %d, vocab %d, %d positions, %d token types): %w",
			cfg.Hidden, cfg.Layers, cfg.Intermediate, cfg.VocabSize, cfg.MaxPositions, cfg.TypeVocab, err)
	}
	var err error
	get := func(name string) []float32 {
		v, e := f.Tensor(prefix + name).Float32()
		if e != nil && err == nil {
			err = fmt.Errorf("%s: %w", f.Path, e)
		}
		return v
	}
	H, I := cfg.Hidden, cfg.Intermediate
	ln := func(name string) model.LayerNorm {
		return model.LayerNorm{G: get(name + ".weight"), B: get(name + ".bias"), Dim: H, Eps: cfg.LayerNormEps}
	}
	lin := func(name string, in, out int) Linear {
		return Linear{W: get(name + ".weight"), B: get(name + ".bias"), In: in, Out: out}
	}
	e := &Encoder{
		Config:  cfg,
		WordEmb: get("embeddings.word_embeddings.weight"),
		PosEmb:  get("embeddings.position_embeddings.weight"),
		TypeEmb: get("embeddings.token_type_embeddings.weight"),
		EmbLN:   ln("embeddings.LayerNorm"),
	}
	for i := range cfg.Layers {
		p := fmt.Sprintf("encoder.layer.%d.", i)
		q, k, v := lin(p+"attention.self.query", H, H), lin(p+"attention.self.key", H, H), lin(p+"attention.self.value", H, H)
		e.Layers = append(e.Layers, Layer{
			QKV:          Linear{W: concat(q.W, k.W, v.W), B: concat(q.B, k.B, v.B), In: H, Out: 3 * H},
			AttnOut:      lin(p+"attention.output.dense", H, H),
			AttnLN:       ln(p + "attention.output.LayerNorm"),
			Intermediate: lin(p+"intermediate.dense", H, I),
			Output:       lin(p+"output.dense", I, H),
			OutLN:        ln(p + "output.LayerNorm"),
		})
	}
	if err != nil {
		return nil, err
	}
	e.Pack()
	return e, nil
}

func concat(parts ...[]float32) []float32 {
	var n int
	for _, p := range parts {
		n += len(p)
	}
	out := make([]float32, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
