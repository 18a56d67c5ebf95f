package model

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/kernels"
)

// ImageTower is either a VisionTransformer or a ModifiedResNet.
type ImageTower interface {
	Forward(ar *Arena, out, pixels []float32, batch int, trace Tracer)
}

// Model is a complete CLIP: image tower, text tower and logit scale.
type Model struct {
	Config     Config
	Visual     ImageTower
	Text       *TextTransformer
	LogitScale float32 // log-space parameter; the forward uses exp(LogitScale)

	arenas ArenaPool

	paramsOnce  sync.Once
	params      []*Param
	buffers     []*Param // ResNet BatchNorm running statistics (no Grad)
	gLogitScale []float32
	// train holds the activations of the training passes (one arena per
	// tower), reused from step to step.
	trainImg, trainTxt Arena
}

// New builds a Model from a reference-named state dict, checking every
// tensor's presence and shape against cfg first. The Linear weights are
// packed straight from the file's data (zero-copy for aligned F32
// tensors, else converted into one reused buffer) and held only in packed
// form; the other tensors are copied, so f may be closed afterwards. Each
// tensor's pages of a memory-mapped f are released as soon as it has been
// packed or copied (checkpoint.File.Release), so the file and the model
// built from it are never resident together: loading needs little more
// memory than the model itself. Params re-creates the unpacked weights
// when training asks for them.
func New(cfg Config, f *checkpoint.File) (*Model, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	if err := cfg.CheckShapes(f); err != nil {
		return nil, err
	}
	return build(cfg, &loader{f: f})
}

// Precision is how a model holds the weights of its Linear layers (the
// transformer blocks, the ViT's patch embedding, the ResNet's attention
// pool) and, for Int8, of the ResNet's 1×1 convolutions. Embeddings,
// LayerNorm, the projections and the other convolutions are float32 in
// every precision.
type Precision string

const (
	// FP32: float32 weights, the reference numbers.
	FP32 Precision = "fp32"
	// BF16: weights rounded to bfloat16, half the memory; the products
	// run in VDPBF16PS on CPUs with AVX512_BF16 (inputs rounded to
	// bfloat16 too), in float32 elsewhere (see kernels.PackedB.ToBF16).
	BF16 Precision = "bf16"
	// Int8: weights quantised to int8 per output feature, a quarter of
	// the memory; inputs quantised per row to 16-bit integers and the
	// products run in integers (see kernels.PackLinearInt8). The ResNet's
	// 1×1 convolutions likewise, inputs quantised per pixel (see
	// kernels.PackConvInt8).
	Int8 Precision = "int8"
)

// Convert returns w held in precision p: its bfloat16 or int8 copy, or w
// itself for FP32 (see kernels.PackedB.ToBF16 and ToInt8).
func (p Precision) Convert(w *kernels.PackedB) *kernels.PackedB {
	switch p {
	case BF16:
		return w.ToBF16()
	case Int8:
		return w.ToInt8()
	}
	return w
}

// ParsePrecision returns the Precision named s ("" is FP32).
func ParsePrecision(s string) (Precision, error) {
	switch p := Precision(s); p {
	case "":
		return FP32, nil
	case FP32, BF16, Int8:
		return p, nil
	}
	return "", fmt.Errorf("precision %q: want fp32, bf16 or int8", s)
}

// NewPrecision is New with every Linear weight held in precision p (see
// UsePrecision), converted layer by layer as it is read: the load never
// holds the float32 weights of more than one layer.
func NewPrecision(cfg Config, f *checkpoint.File, p Precision) (*Model, error) {
	if _, err := ParsePrecision(string(p)); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	if err := cfg.CheckShapes(f); err != nil {
		return nil, err
	}
	return build(cfg, &loader{f: f, prec: p})
}

// build assembles a Model from the tensors l supplies.
func build(cfg Config, l *loader) (*Model, error) {
	m := &Model{Config: cfg}
	ls := l.get("logit_scale")
	if len(ls) == 1 {
		m.LogitScale = ls[0]
	}
	m.Text = buildText(l, cfg)
	if cfg.Vision.IsResNet() {
		m.Visual = buildResNet(l, cfg)
	} else {
		m.Visual = buildViT(l, cfg)
	}
	if l.err != nil {
		return nil, l.err
	}
	m.Pack()
	return m, nil
}

// Linears returns every Linear layer of the model, for packing and for
// optimisers.
func (m *Model) Linears() []*Linear {
	var ls []*Linear
	blocks := func(t *Transformer) {
		for i := range t.Blocks {
			b := &t.Blocks[i]
			ls = append(ls, &b.Attn.In, &b.Attn.Out, &b.MLP.FC, &b.MLP.Proj)
		}
	}
	blocks(&m.Text.Transformer)
	switch v := m.Visual.(type) {
	case *VisionTransformer:
		ls = append(ls, &v.Patch)
		blocks(&v.Transformer)
	case *ModifiedResNet:
		ls = append(ls, &v.Pool.Q, &v.Pool.K, &v.Pool.V, &v.Pool.C)
	}
	return ls
}

// UsePrecision converts every Linear weight to precision p (BF16 or
// Int8) and keeps it packed in that form. It is for inference: the
// float32 weights are dropped, so a model to be trained must not use it;
// FP32 leaves the model as it is. A weight too deep for int8 (more than
// 65536 inputs, kernels.CanInt8) stays float32.
func (m *Model) UsePrecision(p Precision) {
	if p != BF16 && p != Int8 {
		return
	}
	for _, l := range m.Linears() {
		l.UsePrecision(p)
	}
	if p == Int8 {
		m.int8Convs()
	}
}

// int8Convs quantises the ResNet's 1×1 convolutions of stride 1 (see
// kernels.PackConvInt8); their float32 weight W stays, as for every
// convolution.
func (m *Model) int8Convs() {
	r, ok := m.Visual.(*ModifiedResNet)
	if !ok {
		return
	}
	for _, c := range r.convs() {
		if c.int8able() && c.packed != nil && !c.packed.Int8() {
			c.packed = kernels.PackConvInt8(c.W, c.Out, c.In)
		}
	}
}

// Pack packs every Linear weight into the GEMM layout (done by New; call
// again after the weights change). A Linear held only packed is left as is.
func (m *Model) Pack() {
	for _, l := range m.Linears() {
		l.Pack()
	}
}

func (c Config) validate() error {
	check := func(ok bool, format string, a ...any) error {
		if !ok {
			return fmt.Errorf("invalid model configuration: "+format, a...)
		}
		return nil
	}
	v, t := c.Vision, c.Text
	errs := []error{
		check(c.EmbedDim > 0, "embed_dim %d", c.EmbedDim),
		check(t.Width > 0 && t.Heads > 0 && t.Width%t.Heads == 0, "text width %d not divisible into %d heads", t.Width, t.Heads),
		check(t.ContextLength > 0 && t.VocabSize > 0, "text context %d / vocab %d", t.ContextLength, t.VocabSize),
		check(v.Width > 0 && v.Heads > 0 && v.ImageSize > 0, "vision width %d, heads %d, image size %d", v.Width, v.Heads, v.ImageSize),
	}
	if v.IsResNet() {
		errs = append(errs, check(v.ImageSize%32 == 0, "ResNet image size %d is not a multiple of 32", v.ImageSize),
			check(v.Width%2 == 0 && (v.Width*32)%v.Heads == 0, "ResNet width %d with %d heads", v.Width, v.Heads))
	} else {
		errs = append(errs, check(v.ImageSize%v.PatchSize == 0, "image size %d is not a multiple of patch size %d", v.ImageSize, v.PatchSize),
			check(v.Width%v.Heads == 0, "vision width %d not divisible into %d heads", v.Width, v.Heads))
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// loader pulls float32 weights out of a state dict (or, for Random, out of
// a generator), keeping the first error.
type loader struct {
	f *checkpoint.File
	// gen, when set, replaces f: it fills dst with the values of the named
	// tensor.
	gen     func(dst []float32, name string)
	shapes  map[string][]int // of gen's tensors
	scratch []float32        // gen's values for view
	err     error
	// prec converts every Linear weight as it is packed (see
	// Model.UsePrecision); bf16 packs straight into its native layout
	// (kernels.BF16Native) or else through one reused float32 buffer, so
	// the float32 weights never exist all at once.
	prec    Precision
	packBuf []float32
}

func (l *loader) fail(err error) {
	if l.err == nil {
		l.err = err
	}
}

// get returns the named tensor's values in a slice the caller owns. The
// file's copy of the tensor is released (see checkpoint.File.Release): a
// loaded checkpoint need not stay resident beside the model built from it.
func (l *loader) get(name string) []float32 {
	if l.gen != nil {
		shape, ok := l.shapes[name]
		if !ok {
			l.fail(fmt.Errorf("no tensor %q in the configuration", name))
			return nil
		}
		v := make([]float32, numel(shape))
		l.gen(v, name)
		return v
	}
	t := l.f.Tensor(name)
	if t == nil {
		l.fail(fmt.Errorf("%s: missing tensor %q", l.f.Path, name))
		return nil
	}
	v, err := copyOut(l.f, t)
	if err != nil {
		l.fail(fmt.Errorf("%s: %w", l.f.Path, err))
	}
	return v
}

// copyChunk is how many elements copyOut converts (and then releases) at a
// time: 1 Mi elements, 4 MiB of F32.
const copyChunk = 1 << 20

// copyOut converts t to a new float32 slice chunk by chunk on the worker
// pool, releasing each chunk's pages of the file once converted, so that a
// large tensor (the 49408×512 token embedding) is never resident twice.
func copyOut(f *checkpoint.File, t *checkpoint.Tensor) ([]float32, error) {
	n := t.NumElements()
	if n <= copyChunk {
		v, err := t.Float32()
		f.Release(t)
		return v, err
	}
	if _, err := t.Flat(0, n); err != nil { // bytes that do not match the shape
		return nil, err
	}
	v := make([]float32, n)
	prefault(v)
	var mu sync.Mutex
	var first error
	kernels.Parallel((n+copyChunk-1)/copyChunk, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			a, b := c*copyChunk, min((c+1)*copyChunk, n)
			part, err := t.Flat(a, b)
			if err == nil {
				err = part.Float32Into(v[a:b])
			}
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				return
			}
			f.Release(part)
		}
	})
	if first != nil {
		return nil, first
	}
	return v, nil
}

// view returns the named tensor's values read-only and only until the next
// view or release: a zero-copy view of the file's data where possible,
// else the values converted into a scratch buffer reused from view to view
// (an F16 checkpoint allocates no per-tensor copies). It is for weights
// that are consumed at once (packed), after which the caller releases them.
func (l *loader) view(name string) []float32 {
	var shape []int
	var t *checkpoint.Tensor
	if l.gen != nil {
		var ok bool
		if shape, ok = l.shapes[name]; !ok {
			l.fail(fmt.Errorf("no tensor %q in the configuration", name))
			return nil
		}
	} else {
		if t = l.f.Tensor(name); t == nil {
			l.fail(fmt.Errorf("%s: missing tensor %q", l.f.Path, name))
			return nil
		}
		if v, ok := t.Float32View(); ok {
			return v
		}
		shape = t.Shape
	}
	n := numel(shape)
	if cap(l.scratch) < n {
		l.scratch = make([]float32, n)
	}
	v := l.scratch[:n]
	if l.gen != nil {
		l.gen(v, name)
		return v
	}
	if err := t.Float32Into(v); err != nil {
		l.fail(fmt.Errorf("%s: %w", l.f.Path, err))
		return nil
	}
	return v
}

// release drops the file's copy of the named tensor from memory once it
// has been consumed (see checkpoint.File.Release).
func (l *loader) release(name string) {
	if l.f != nil {
		l.f.Release(l.f.Tensor(name))
	}
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// linear loads an nn.Linear and packs its weight (see Linear.Pack); the
// unpacked weight is not kept.
func (l *loader) linear(prefix string, in, out int) Linear {
	return l.packed(prefix+".weight", prefix+".bias", in, out)
}

// packed loads a Linear from the named weight and bias (bias may be "")
// and packs the weight.
func (l *loader) packed(weight, bias string, in, out int) Linear {
	lin := Linear{In: in, Out: out}
	if bias != "" {
		lin.B = l.get(bias)
	}
	w := l.view(weight)
	if l.err == nil && len(w) == in*out {
		switch {
		case l.prec == Int8 && kernels.CanInt8(in):
			lin.packed = kernels.PackLinearInt8(w, out, in)
		case l.prec == BF16 && kernels.BF16Native():
			lin.packed = kernels.PackLinearBF16(w, out, in)
		case l.prec == BF16:
			if n := kernels.PackedLen(out, in); cap(l.packBuf) < n {
				l.packBuf = make([]float32, n)
			}
			lin.packed = kernels.PackLinearInto(l.packBuf, w, out, in).ToBF16()
		default:
			buf := make([]float32, kernels.PackedLen(out, in))
			prefault(buf)
			lin.packed = kernels.PackLinearInto(buf, w, out, in)
		}
	}
	l.release(weight)
	return lin
}

func (l *loader) layerNorm(prefix string, dim int, eps float32) LayerNorm {
	return LayerNorm{G: l.get(prefix + ".weight"), B: l.get(prefix + ".bias"), Dim: dim, Eps: eps}
}

func (l *loader) transformer(prefix string, layers, width, heads int, cfg Config) Transformer {
	var t Transformer
	for i := range layers {
		p := fmt.Sprintf("%s%d.", prefix, i)
		t.Blocks = append(t.Blocks, Block{
			LN1: l.layerNorm(p+"ln_1", width, cfg.LayerNormEps),
			LN2: l.layerNorm(p+"ln_2", width, cfg.LayerNormEps),
			Attn: Attention{
				In:    l.packed(p+"attn.in_proj_weight", p+"attn.in_proj_bias", width, 3*width),
				Out:   l.linear(p+"attn.out_proj", width, width),
				Heads: heads,
			},
			MLP: MLP{FC: l.linear(p+"mlp.c_fc", width, 4*width), Proj: l.linear(p+"mlp.c_proj", 4*width, width), QuickGELU: cfg.QuickGELU},
		})
	}
	return t
}

func buildText(l *loader, cfg Config) *TextTransformer {
	t := cfg.Text
	return &TextTransformer{
		TokenEmbedding: l.get("token_embedding.weight"),
		PosEmbedding:   l.get("positional_embedding"),
		Transformer:    l.transformer("transformer.resblocks.", t.Layers, t.Width, t.Heads, cfg),
		LNFinal:        l.layerNorm("ln_final", t.Width, cfg.LayerNormEps),
		Proj:           l.get("text_projection"),
		Width:          t.Width, Context: t.ContextLength, Vocab: t.VocabSize, EmbedDim: cfg.EmbedDim,
	}
}

func buildViT(l *loader, cfg Config) *VisionTransformer {
	v := cfg.Vision
	return &VisionTransformer{
		Patch:          l.packed("visual.conv1.weight", "", 3*v.PatchSize*v.PatchSize, v.Width),
		PatchSize:      v.PatchSize,
		ImageSize:      v.ImageSize,
		Width:          v.Width,
		ClassEmbedding: l.get("visual.class_embedding"),
		PosEmbedding:   l.get("visual.positional_embedding"),
		LNPre:          l.layerNorm("visual.ln_pre", v.Width, cfg.LayerNormEps),
		LNPost:         l.layerNorm("visual.ln_post", v.Width, cfg.LayerNormEps),
		Transformer:    l.transformer("visual.transformer.resblocks.", v.Layers, v.Width, v.Heads, cfg),
		Proj:           l.get("visual.proj"),
		EmbedDim:       cfg.EmbedDim,
	}
}

// convBN loads a bias-free convolution followed by BatchNorm (eps 1e-5,
// eval mode) and folds the normalisation into the convolution, keeping the
// unfolded weight and BatchNorm for training.
func (l *loader) convBN(conv, bn string, in, out, k, stride, pad int) Conv2d {
	w := l.get(conv + ".weight")
	norm := &BatchNorm{G: l.get(bn + ".weight"), B: l.get(bn + ".bias"), Mean: l.get(bn + ".running_mean"), Var: l.get(bn + ".running_var")}
	c := Conv2d{W: w, B: make([]float32, out), In: in, Out: out, K: k, Stride: stride, Pad: pad}
	if l.err != nil {
		return c
	}
	c.Raw, c.BN = append([]float32(nil), w...), norm
	c.refold(l.prec == Int8) // a 1×1 convolution packed once, as int8
	return c
}

func buildResNet(l *loader, cfg Config) *ModifiedResNet {
	v := cfg.Vision
	w := v.Width
	r := &ModifiedResNet{ImageSize: v.ImageSize, EmbedDim: cfg.EmbedDim}
	r.Stem[0] = l.convBN("visual.conv1", "visual.bn1", 3, w/2, 3, 2, 1)
	r.Stem[1] = l.convBN("visual.conv2", "visual.bn2", w/2, w/2, 3, 1, 1)
	r.Stem[2] = l.convBN("visual.conv3", "visual.bn3", w/2, w, 3, 1, 1)
	in := w
	for li, nb := range v.Layers4 {
		planes := w << li
		var stage []Bottleneck
		for b := range nb {
			p := fmt.Sprintf("visual.layer%d.%d", li+1, b)
			stride := 1
			if li > 0 && b == 0 {
				stride = 2
			}
			blk := Bottleneck{
				Conv1:  l.convBN(p+".conv1", p+".bn1", in, planes, 1, 1, 0),
				Conv2:  l.convBN(p+".conv2", p+".bn2", planes, planes, 3, 1, 1),
				Conv3:  l.convBN(p+".conv3", p+".bn3", planes, planes*4, 1, 1, 0),
				Stride: stride,
			}
			if stride > 1 || in != planes*4 {
				d := l.convBN(p+".downsample.0", p+".downsample.1", in, planes*4, 1, 1, 0)
				blk.Down = &d
			}
			stage = append(stage, blk)
			in = planes * 4
		}
		r.Layers = append(r.Layers, stage)
	}
	d := w * 32
	r.Pool = AttentionPool{
		Pos:   l.get("visual.attnpool.positional_embedding"),
		Q:     l.linear("visual.attnpool.q_proj", d, d),
		K:     l.linear("visual.attnpool.k_proj", d, d),
		V:     l.linear("visual.attnpool.v_proj", d, d),
		C:     l.linear("visual.attnpool.c_proj", d, cfg.EmbedDim),
		Heads: v.Heads,
		Dim:   d,
	}
	return r
}

func (m *Model) arena() *Arena { return m.arenas.Get() }

// ArenaPool keeps the activation arenas of finished passes for the next
// ones. Unlike a sync.Pool it is not emptied by the garbage collector, so
// a warmed-up model never reallocates its activations; it keeps at most
// two arenas per thread (concurrent callers beyond that get fresh ones
// that are dropped afterwards). The zero value is an empty pool.
type ArenaPool struct {
	mu   sync.Mutex
	free []*Arena
}

// Get returns a free arena, reset, or a new one.
func (p *ArenaPool) Get() *Arena {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		a := p.free[n-1]
		p.free = p.free[:n-1]
		a.Reset()
		return a
	}
	return &Arena{}
}

// Put returns a to the pool.
func (p *ArenaPool) Put(a *Arena) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < max(4, 2*runtime.GOMAXPROCS(0)) {
		p.free = append(p.free, a)
	}
}

// EncodeImage maps preprocessed pixels [batch, 3, S, S] to unnormalised
// image features [batch, embed]. trace may be nil.
func (m *Model) EncodeImage(out, pixels []float32, batch int, trace Tracer) {
	EncodeImageBatch(m.Visual, &m.arenas, out, pixels, batch, m.Config.EmbedDim, m.Config.Vision.ImageSize, trace)
}

// EncodeImageBatch runs tower over preprocessed pixels [batch, 3, size,
// size] into out [batch, embed] with arenas from arenas: a batch of at
// least one image per free thread is split over the threads (see
// batchShards), the same bits as one pass. Model.EncodeImage is it for a
// CLIP; other models with an image tower (Chinese-CLIP) use it too.
func EncodeImageBatch(tower ImageTower, arenas *ArenaPool, out, pixels []float32, batch, embed, size int, trace Tracer) {
	if n := batchShards(batch); n > 1 && trace == nil {
		runPooled[shardTask](&shardPool, n, shardTask{visual: tower, arenas: arenas, embed: embed, size: size,
			out: out, pixels: pixels, batch: batch, shards: n})
		return
	}
	ar := arenas.Get()
	defer arenas.Put(ar)
	tower.Forward(ar, out, pixels, batch, trace)
}

// EncodeText maps token rows of length ContextLength to unnormalised text
// features [len(tokens), embed]. trace may be nil.
func (m *Model) EncodeText(out []float32, tokens [][]int32, trace Tracer) error {
	ar := m.arena()
	defer m.arenas.Put(ar)
	if n := batchShards(len(tokens)); n > 1 && trace == nil {
		// Check every row first, so that an error names its row.
		if _, err := m.Text.scan(tokens, ar.Ints(len(tokens))); err != nil {
			return err
		}
		runPooled[shardTask](&shardPool, n, shardTask{text: m.Text, arenas: &m.arenas, embed: m.Config.EmbedDim,
			out: out, tokens: tokens, batch: len(tokens), shards: n})
		return nil
	}
	return m.Text.Forward(ar, out, tokens, trace)
}

// batchShards returns into how many parts a forward pass of batch inputs
// is split, one per free thread of the worker pool, each part running on
// its own thread with single-threaded products: splitting the batch needs
// no synchronisation within the pass and packs no operand twice, which
// scales better over threads than splitting every product (batch 32, 2
// threads: RN50 +14%, ViT-B/32 +1-5%; BenchmarkBatchSplit). Batches
// smaller than the thread count, or that would split unevenly while small,
// are not split (1).
func batchShards(batch int) int {
	w := kernels.Workers()
	if w <= 1 || batch < w || (batch%w != 0 && batch < 4*w) {
		return 1
	}
	return w
}

// shardTask runs part s of a batch split in shards parts (see
// batchShards), each part with its own arena: images through visual, or
// token rows through text when text is set.
type shardTask struct {
	visual        ImageTower
	text          *TextTransformer
	arenas        *ArenaPool
	embed, size   int
	out, pixels   []float32
	tokens        [][]int32
	batch, shards int
}

var shardPool = sync.Pool{New: func() any { return new(shardTask) }}

func (t *shardTask) RunRange(lo, hi int) {
	for s := lo; s < hi; s++ {
		b0, b1 := s*t.batch/t.shards, (s+1)*t.batch/t.shards
		ar := t.arenas.Get()
		ed := t.embed
		if t.text != nil {
			// Rows were checked by EncodeText: no error here.
			_ = t.text.Forward(ar, t.out[b0*ed:b1*ed], t.tokens[b0:b1], nil)
		} else {
			per := 3 * t.size * t.size
			t.visual.Forward(ar, t.out[b0*ed:b1*ed], t.pixels[b0*per:b1*per], b1-b0, nil)
		}
		t.arenas.Put(ar)
	}
}
