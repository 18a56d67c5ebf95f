// Package clip is goclip's public API: load a CLIP checkpoint, embed images
// and texts into the shared embedding space, and compare them.
//
//	m, err := clip.Load("ViT-B-32/")           // open_clip, Hugging Face or OpenAI files
//	img, err := m.EncodeImageFiles(ctx, []string{"cat.jpg"})
//	txt, err := m.EncodeTexts(ctx, []string{"a photo of a cat", "a photo of a dog"})
//	probs := clip.Softmax(m.Logits(img, txt)[0])
//
// The numbers are the reference openai/CLIP numbers: the tokenizer, the
// Pillow-exact preprocessing and both towers are checked against fixtures
// produced by the reference Python code. A Model is safe for concurrent use.
package clip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/cnclip"
	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/kernels"
	"github.com/goclip/goclip/internal/model"
	"github.com/goclip/goclip/internal/tokenizer"
	"github.com/goclip/goclip/internal/train"
)

// Model is a loaded CLIP model with its tokenizer and preprocessing.
type Model struct {
	towers   towers
	net      *model.Model // OpenAI-style CLIP; nil for Chinese-CLIP
	cn       *cnclip.Model
	tok      *tokenizer.Tokenizer
	tokenize func(text string) ([]int32, bool)
	pre      imageproc.Options
	path     string
	batch    int
	embed    int
	size     int
	ctxLen   int
	scale    float32 // log space
	kind     string
	prec     model.Precision
	pixels   pixelPool // batch pixel buffers reused by encode
}

// pixelPool keeps encode's batch pixel buffers for the next call (not
// emptied by the garbage collector, unlike a sync.Pool; at most a few kept).
type pixelPool struct {
	mu   sync.Mutex
	free [][]float32
}

func (p *pixelPool) get(n int) []float32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, b := range p.free {
		if cap(b) >= n {
			p.free = append(p.free[:i], p.free[i+1:]...)
			return b[:n]
		}
	}
	return make([]float32, n)
}

func (p *pixelPool) put(b []float32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < max(2, runtime.GOMAXPROCS(0)) {
		p.free = append(p.free, b)
	}
}

// towers is what both model kinds (CLIP, Chinese-CLIP) provide.
type towers interface {
	EncodeImage(out, pixels []float32, batch int, trace model.Tracer)
	EncodeText(out []float32, tokens [][]int32, trace model.Tracer) error
}

type options struct {
	tokenizer string
	batch     int
	hfOrder   *bool
	exif      bool
	maxPixels int64
	gelu      *bool
	goJPEG    bool
	precision string
}

// Option configures Load.
type Option func(*options)

// WithTokenizer loads the BPE vocabulary from path (bpe_simple_vocab_16e6.txt.gz,
// tokenizer.json, vocab.json with merges.txt beside it, or a directory
// holding one of them) instead of looking next to the checkpoint.
func WithTokenizer(path string) Option { return func(o *options) { o.tokenizer = path } }

// WithBatchSize sets how many inputs go through the network at once
// (default 32).
func WithBatchSize(n int) Option { return func(o *options) { o.batch = n } }

// WithHFPreprocessing selects the Hugging Face CLIPImageProcessor order
// (convert to RGB first, floor-division crop, multiply by 1/255) instead of
// the reference openai/CLIP transform. The default is the reference order.
func WithHFPreprocessing(on bool) Option { return func(o *options) { o.hfOrder = &on } }

// WithEXIFOrientation applies the EXIF orientation tag before
// preprocessing. The reference does not, so it is off by default.
func WithEXIFOrientation(on bool) Option { return func(o *options) { o.exif = on } }

// WithMaxPixels sets the largest width×height accepted when decoding an
// image (decompression-bomb guard); 0 keeps the default, negative disables.
func WithMaxPixels(n int64) Option { return func(o *options) { o.maxPixels = n } }

// WithGoJPEG decodes JPEG files with Go's image/jpeg instead of goclip's
// decoder, which reproduces libjpeg-turbo (and so the reference) exactly.
func WithGoJPEG(on bool) Option { return func(o *options) { o.goJPEG = on } }

// WithQuickGELU overrides the activation the checkpoint's config implies:
// true for QuickGELU (OpenAI models), false for exact GELU (most LAION
// open_clip models). Use it only for checkpoints that ship without config.
func WithQuickGELU(on bool) Option { return func(o *options) { o.gelu = &on } }

// WithPrecision selects the precision of the weights of the linear layers:
// "fp32" (the default, exact), "bf16" (rounded to bfloat16: half their
// memory; features within cosine ~0.9999 of fp32; on CPUs with
// AVX512_BF16 the inputs are rounded too and the products run in bf16,
// 1.5–1.7× faster than fp32; elsewhere they run in float32) or "int8" (quantised
// per output feature: a quarter of their memory; inputs quantised per row
// to 16-bit integers and the products run in integers, faster than fp32
// on amd64 with AVX2; a ResNet's 1×1 convolutions too; features within
// cosine ~0.999 of fp32). Chinese-CLIP models convert both towers'
// linear layers after loading them in float32.
func WithPrecision(p string) Option { return func(o *options) { o.precision = p } }

// Load reads a CLIP model from path: a safetensors or PyTorch file (open_clip
// state dict, OpenAI TorchScript archive) or a directory (Hugging Face
// CLIPModel layout, or open_clip files). The architecture comes from
// open_clip_config.json or config.json beside the weights, else it is
// inferred from tensor shapes as openai/CLIP's build_model does.
func Load(path string, opts ...Option) (*Model, error) {
	var o options
	for _, fn := range opts {
		fn(&o)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	if o.batch <= 0 {
		o.batch = 32
	}
	prec, err := model.ParsePrecision(o.precision)
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	if isChineseCLIP(path, st.IsDir()) {
		return loadChinese(path, o, prec)
	}
	dir := path
	if !st.IsDir() {
		dir = filepath.Dir(path)
	}
	f, err := checkpoint.Open(path)
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	cfg, pre, err := readConfig(dir, f)
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	if o.gelu != nil {
		cfg.QuickGELU = *o.gelu
	}
	net, err := model.NewPrecision(cfg, f, prec)
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	f.Close() // weights are copied out; release the mapping
	tokPath := o.tokenizer
	if tokPath == "" {
		if tokPath, err = tokenizer.Find(dir); err != nil {
			return nil, fmt.Errorf("clip: %w", err)
		}
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	if o.hfOrder != nil {
		pre.HFOrder = *o.hfOrder
	}
	o.applyTo(&pre)
	m := &Model{towers: net, net: net, tok: tok, pre: pre, path: path, batch: o.batch, prec: prec,
		embed: cfg.EmbedDim, size: cfg.Vision.ImageSize, ctxLen: cfg.Text.ContextLength, scale: net.LogitScale, kind: "clip"}
	m.tokenize = func(text string) ([]int32, bool) { return tok.Tokenize(text, m.ctxLen) }
	return m, nil
}

func (o *options) applyTo(pre *imageproc.Options) {
	pre.ApplyEXIF = o.exif
	pre.MaxPixels = o.maxPixels
	pre.GoJPEG = o.goJPEG
}

// isChineseCLIP reports whether path holds a Chinese-CLIP model: a Hugging
// Face directory whose config says chinese_clip, a directory with cn_clip
// model configs, or a cn_clip checkpoint with a BERT text tower.
func isChineseCLIP(path string, isDir bool) bool {
	dir := path
	if !isDir {
		dir = filepath.Dir(path)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "config.json")); err == nil {
		var c struct {
			ModelType string `json:"model_type"`
		}
		if json.Unmarshal(b, &c) == nil && c.ModelType == "chinese_clip" {
			return true
		}
	}
	if exists(filepath.Join(dir, "cn_clip_model_configs")) {
		return true
	}
	if isDir {
		return false
	}
	f, err := checkpoint.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for name := range f.Tensors {
		if strings.HasPrefix(name, "bert.") {
			return true
		}
	}
	return false
}

func loadChinese(path string, o options, prec model.Precision) (*Model, error) {
	cn, err := cnclip.Load(path, cnclip.Options{Vocab: o.tokenizer, HF: o.hfOrder != nil && *o.hfOrder, Precision: prec})
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	pre := cn.Preprocess
	o.applyTo(&pre)
	m := &Model{towers: cn, cn: cn, pre: pre, path: path, batch: o.batch, prec: prec,
		embed: cn.EmbedDim(), size: cn.ImageSize(), ctxLen: cn.ContextLength(), scale: cn.LogitScale, kind: "chinese-clip"}
	m.tokenize = func(text string) ([]int32, bool) {
		rows, trunc, err := cn.Tokenize([]string{text})
		if err != nil || len(rows) != 1 {
			return make([]int32, m.ctxLen), false
		}
		return rows[0], trunc[0]
	}
	return m, nil
}

// readConfig finds the model configuration and preprocessing beside the
// weights: open_clip_config.json, then Hugging Face config.json (with
// preprocessor_config.json), else inference from the tensors.
func readConfig(dir string, f *checkpoint.File) (model.Config, imageproc.Options, error) {
	var cfg model.Config
	var err error
	oc := filepath.Join(dir, "open_clip_config.json")
	hf := filepath.Join(dir, "config.json")
	var pcfg *model.PreprocessConfig
	switch {
	case exists(oc):
		cfg, pcfg, err = model.ReadOpenCLIPConfig(oc)
	case exists(hf):
		cfg, err = model.ReadHFConfig(hf)
	default:
		cfg, err = model.InferConfig(f)
	}
	if err != nil {
		return cfg, imageproc.Options{}, err
	}
	pre := imageproc.DefaultOptions(cfg.Vision.ImageSize)
	if pp := filepath.Join(dir, "preprocessor_config.json"); exists(pp) {
		hfPre, err := imageproc.LoadHFConfig(pp)
		if err != nil {
			return cfg, pre, err
		}
		// Mean, std and sizes come from the processor config; the order
		// stays the reference one unless WithHFPreprocessing asks.
		hfPre.HFOrder = false
		pre = hfPre
	}
	if pcfg != nil {
		if len(pcfg.Mean) == 3 && len(pcfg.Std) == 3 {
			for i := range 3 {
				pre.Mean[i], pre.Std[i] = float32(pcfg.Mean[i]), float32(pcfg.Std[i])
			}
		}
		if pcfg.Interpolation != "" {
			pre.Interpolation = pcfg.Interpolation
		}
		if pcfg.ResizeMode != "" && pcfg.ResizeMode != "shortest" {
			return cfg, pre, fmt.Errorf("%s: resize_mode %q is not supported (only \"shortest\")", oc, pcfg.ResizeMode)
		}
	}
	if pre.Size != cfg.Vision.ImageSize {
		return cfg, pre, fmt.Errorf("%s: preprocessing crops to %d px but the image tower takes %d px", dir, pre.Size, cfg.Vision.ImageSize)
	}
	return cfg, pre, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Config returns the CLIP architecture (for Chinese-CLIP only the embedding
// size, image size and context length are filled in).
func (m *Model) Config() model.Config {
	if m.net != nil {
		return m.net.Config
	}
	return model.Config{EmbedDim: m.embed, Vision: model.VisionConfig{ImageSize: m.size}, Text: model.TextConfig{ContextLength: m.ctxLen}}
}

// Kind returns "clip" (OpenAI/open_clip architecture) or "chinese-clip"
// (BERT text tower).
func (m *Model) Kind() string { return m.kind }

// EmbedDim returns the size of the shared embedding space.
func (m *Model) EmbedDim() int { return m.embed }

// ImageSize returns the side in pixels of the image tower's input.
func (m *Model) ImageSize() int { return m.size }

// ContextLength returns the text tower's token context (77 for CLIP, 52
// for Chinese-CLIP).
func (m *Model) ContextLength() int { return m.ctxLen }

// LogitScale returns exp(logit_scale), the factor applied to cosine
// similarities to form logits (100 for OpenAI's released models).
func (m *Model) LogitScale() float32 { return float32(math.Exp(float64(m.scale))) }

// Path returns where the model was loaded from.
func (m *Model) Path() string { return m.path }

// Precision returns the precision of the linear layers' weights, as
// chosen by WithPrecision: "fp32", "bf16" or "int8".
func (m *Model) Precision() string { return string(m.prec) }

// Network exposes the underlying CLIP network (for training and
// diagnostics); it is nil for Chinese-CLIP models.
func (m *Model) Network() *model.Model { return m.net }

// ChineseCLIP exposes the underlying Chinese-CLIP network (training and
// diagnostics); it is nil for OpenAI-style CLIP models.
func (m *Model) ChineseCLIP() *cnclip.Model { return m.cn }

// ContrastiveGrad zeroes the gradients, computes open_clip's ClipLoss over
// the pairs (image i, text i) of preprocessed pixels and token rows, and
// back-propagates it: the gradients are left in Params()[k].Grad and the
// gradient of the loss with respect to the pixels is returned.
func (m *Model) ContrastiveGrad(pixels []float32, tokens [][]int32) (loss float32, dPixels []float32, err error) {
	if m.cn != nil {
		return m.cn.ContrastiveGrad(pixels, tokens)
	}
	return train.ContrastiveGrad(m.net, pixels, tokens)
}

// Params lists the trainable parameters in the reference naming (openai
// CLIP's state dict, or cn_clip's for Chinese-CLIP), values aliasing the
// live weights, with their gradient buffers.
func (m *Model) Params() []*model.Param {
	if m.cn != nil {
		return m.cn.Params()
	}
	return m.net.Params()
}

// PreprocessOptions returns the image preprocessing the model uses.
func (m *Model) PreprocessOptions() imageproc.Options { return m.pre }

// Tokenize returns the context-length token row of text (start token, BPE
// ids, end token, zero padding) and whether the text had to be truncated
// to fit, as clip.tokenize(text, truncate=True) does.
func (m *Model) Tokenize(text string) ([]int32, bool) { return m.tokenize(text) }

// Tokenizer returns the model's BPE tokenizer (nil for Chinese-CLIP, which
// uses WordPiece).
func (m *Model) Tokenizer() *tokenizer.Tokenizer { return m.tok }

// TextEmbedding is one text's embedding with how it was tokenized.
type TextEmbedding struct {
	Embedding []float32
	// Truncated is set when the text was longer than the context and its
	// tail was dropped (the reference's truncate=True behaviour).
	Truncated bool
}

// EncodeTexts returns the unnormalised text features (the reference
// encode_text output) for each text, in order. Texts longer than the
// context are truncated; EmbedTexts reports which.
func (m *Model) EncodeTexts(ctx context.Context, texts []string) ([][]float32, error) {
	res, err := m.EmbedTexts(ctx, texts)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(res))
	for i, r := range res {
		out[i] = r.Embedding
	}
	return out, nil
}

// EmbedTexts is EncodeTexts that also reports truncation per text.
func (m *Model) EmbedTexts(ctx context.Context, texts []string) ([]TextEmbedding, error) {
	rows := make([][]int32, len(texts))
	res := make([]TextEmbedding, len(texts))
	for i, t := range texts {
		rows[i], res[i].Truncated = m.Tokenize(t)
	}
	emb, err := m.EncodeTokens(ctx, rows)
	if err != nil {
		return nil, err
	}
	for i := range res {
		res[i].Embedding = emb[i]
	}
	return res, nil
}

// EncodeTokens runs the text tower on token rows of ContextLength ids.
func (m *Model) EncodeTokens(ctx context.Context, rows [][]int32) ([][]float32, error) {
	ed := m.EmbedDim()
	flat := make([]float32, len(rows)*ed)
	for lo := 0; lo < len(rows); lo += m.batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+m.batch, len(rows))
		if err := m.towers.EncodeText(flat[lo*ed:hi*ed], rows[lo:hi], nil); err != nil {
			return nil, fmt.Errorf("clip: %w", err)
		}
	}
	return split(flat, ed), nil
}

// EncodeImages returns the unnormalised image features (the reference
// encode_image output) of already-decoded images, in order.
func (m *Model) EncodeImages(ctx context.Context, imgs []image.Image) ([][]float32, error) {
	return m.encode(ctx, len(imgs), func(i int, dst []float32) error {
		if imgs[i] == nil {
			return fmt.Errorf("image %d is nil", i)
		}
		return imageproc.PreprocessImageInto(dst, imgs[i], m.pre)
	})
}

// EncodeImageFiles decodes, preprocesses and embeds image files. The first
// file that cannot be read fails the call with an error naming it; use
// EmbedImageFiles to skip bad files instead.
func (m *Model) EncodeImageFiles(ctx context.Context, paths []string) ([][]float32, error) {
	emb, errs := m.EmbedImageFiles(ctx, paths)
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return emb, nil
}

// EmbedImageFiles embeds image files, returning per file either its
// embedding or the error that made it unusable (corrupt, unsupported,
// too large). A context error stops the whole call.
func (m *Model) EmbedImageFiles(ctx context.Context, paths []string) ([][]float32, []error) {
	errs := make([]error, len(paths))
	emb, err := m.encode(ctx, len(paths), func(i int, dst []float32) error {
		if err := imageproc.PreprocessFileInto(dst, paths[i], m.pre); err != nil {
			errs[i] = err
			return errSkip
		}
		return nil
	})
	if err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return make([][]float32, len(paths)), errs
	}
	for i := range emb {
		if errs[i] != nil {
			emb[i] = nil
		}
	}
	return emb, errs
}

var errSkip = errors.New("skip")

// EncodePixels runs the image tower on preprocessed pixels [n, 3, S, S].
func (m *Model) EncodePixels(ctx context.Context, pixels []float32, n int) ([][]float32, error) {
	s := m.ImageSize()
	if len(pixels) != n*3*s*s {
		return nil, fmt.Errorf("clip: %d pixel values for %d images of 3×%d×%d", len(pixels), n, s, s)
	}
	ed := m.EmbedDim()
	flat := make([]float32, n*ed)
	for lo := 0; lo < n; lo += m.batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+m.batch, n)
		m.towers.EncodeImage(flat[lo*ed:hi*ed], pixels[lo*3*s*s:hi*3*s*s], hi-lo, nil)
	}
	return split(flat, ed), nil
}

// Preprocess applies the model's image transform to img and returns
// CHW float32 pixels of 3×ImageSize×ImageSize.
func (m *Model) Preprocess(img image.Image) ([]float32, error) {
	s := m.ImageSize()
	dst := make([]float32, 3*s*s)
	return dst, imageproc.PreprocessImageInto(dst, img, m.pre)
}

// encode preprocesses n inputs in parallel (prep fills one image's pixels;
// errSkip marks an input to leave out) and runs the image tower in batches.
func (m *Model) encode(ctx context.Context, n int, prep func(i int, dst []float32) error) ([][]float32, error) {
	s := m.ImageSize()
	per := 3 * s * s
	ed := m.EmbedDim()
	out := make([][]float32, n)
	flat := make([]float32, n*ed)
	pix := m.pixels.get(min(n, m.batch) * per)
	defer m.pixels.put(pix)
	t := prepPool.Get().(*prepTask)
	defer func() { t.prep, t.pix, t.err = nil, nil, nil; prepPool.Put(t) }()
	t.prep, t.pix, t.per = prep, pix, per
	for lo := 0; lo < n; lo += m.batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+m.batch, n)
		t.lo, t.n, t.err = lo, hi-lo, nil
		t.next.Store(0)
		if cap(t.ok) < hi-lo {
			t.ok = make([]bool, hi-lo)
		}
		t.ok = t.ok[:hi-lo]
		// One worker per thread, each taking the next input until none is
		// left: images of very different sizes still share the threads.
		kernels.ParallelTask(min(hi-lo, runtime.GOMAXPROCS(0)), t)
		if t.err != nil {
			return nil, t.err
		}
		// Compact the good inputs and run them as one batch.
		k := 0
		for i := lo; i < hi; i++ {
			if t.ok[i-lo] {
				if k != i-lo {
					copy(pix[k*per:(k+1)*per], pix[(i-lo)*per:(i-lo+1)*per])
				}
				k++
			}
		}
		if k > 0 {
			m.towers.EncodeImage(flat[lo*ed:(lo+k)*ed], pix[:k*per], k, nil)
		}
		j := lo
		for i := lo; i < hi; i++ {
			if t.ok[i-lo] {
				out[i] = flat[j*ed : (j+1)*ed : (j+1)*ed]
				j++
			}
		}
	}
	return out, nil
}

// prepTask is encode's parallel preprocessing of one batch, inputs
// lo … lo+n-1 into pix: each worker takes the next input (next, atomic)
// until none is left. Kept in a sync.Pool so that a call allocates no
// goroutines or closures per image.
type prepTask struct {
	prep       func(i int, dst []float32) error
	pix        []float32
	per, lo, n int
	next       atomic.Int64
	ok         []bool
	mu         sync.Mutex
	err        error
}

var prepPool = sync.Pool{New: func() any { return new(prepTask) }}

func (t *prepTask) RunRange(_, _ int) {
	for {
		j := int(t.next.Add(1)) - 1
		if j >= t.n {
			return
		}
		err := t.prep(t.lo+j, t.pix[j*t.per:(j+1)*t.per])
		t.ok[j] = err == nil
		if err != nil && !errors.Is(err, errSkip) {
			t.mu.Lock()
			if t.err == nil {
				t.err = fmt.Errorf("clip: %w", err)
			}
			t.mu.Unlock()
		}
	}
}

func split(flat []float32, w int) [][]float32 {
	out := make([][]float32, len(flat)/w)
	for i := range out {
		out[i] = flat[i*w : (i+1)*w : (i+1)*w]
	}
	return out
}

// Normalize returns v scaled to unit L2 norm (a zero vector stays zero).
func Normalize(v []float32) []float32 { return kernels.Normalized(v) }

// Similarity returns the cosine similarity of a and b.
func Similarity(a, b []float32) float32 { return float32(kernels.Cosine(a, b)) }

// Logits returns logits_per_image [len(images)][len(texts)] =
// exp(logit_scale) · cos(image, text), as the reference CLIP.forward.
func (m *Model) Logits(images, texts [][]float32) [][]float32 {
	scale := m.LogitScale()
	tn := make([][]float32, len(texts))
	for j, t := range texts {
		tn[j] = Normalize(t)
	}
	out := make([][]float32, len(images))
	for i, im := range images {
		in := Normalize(im)
		row := make([]float32, len(texts))
		for j := range texts {
			var s float32
			for c := range in {
				s += scale * in[c] * tn[j][c]
			}
			row[j] = s
		}
		out[i] = row
	}
	return out
}

// Softmax returns the softmax of a row of logits.
func Softmax(row []float32) []float32 {
	out := make([]float32, len(row))
	if len(row) == 0 {
		return out
	}
	mx := row[0]
	for _, v := range row {
		mx = max(mx, v)
	}
	var sum float64
	for i, v := range row {
		e := math.Exp(float64(v - mx))
		out[i] = float32(e)
		sum += e
	}
	for i := range out {
		out[i] = float32(float64(out[i]) / sum)
	}
	return out
}
