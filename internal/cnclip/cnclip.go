// Package cnclip is Chinese-CLIP (OFA-Sys/Chinese-CLIP): CLIP's ViT image
// tower (internal/model) paired with a BERT text tower (internal/bert)
// pooled at [CLS], BERT's WordPiece tokenizer (internal/wordpiece) and
// Chinese-CLIP's squash preprocessing. It loads cn_clip training
// checkpoints (torch.save of {'state_dict': ...} with "module." keys,
// float16 or float32) and Hugging Face ChineseCLIPModel directories.
package cnclip

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/goclip/goclip/internal/bert"
	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/kernels"
	"github.com/goclip/goclip/internal/model"
	"github.com/goclip/goclip/internal/wordpiece"
)

// Model is a complete Chinese-CLIP model.
type Model struct {
	Config   Config
	Visual   *model.VisionTransformer
	Text     *bert.Encoder
	TextProj []float32 // [hidden, embed], applied as x·P
	// LogitScale is the log-space parameter; similarities use
	// exp(LogitScale).
	LogitScale float32
	// Tokenizer turns texts into token rows of Config.ContextLength.
	Tokenizer *wordpiece.Tokenizer
	// VocabFile is the vocab.txt Tokenizer was read from; WriteHF copies
	// it byte for byte (a vocabulary rebuilt from the tokens would lose
	// what the reference's line stripping removes).
	VocabFile string
	// Preprocess is the image preprocessing the checkpoint's files ask for:
	// cn_clip's image_transform (squash resize, RGB conversion after it) for
	// cn_clip checkpoints, the ChineseCLIPImageProcessor of
	// preprocessor_config.json (RGB conversion first) for HF directories.
	Preprocess imageproc.Options
	// Format is "cn_clip" or "hf".
	Format string
	// Path is the checkpoint file or directory.
	Path string

	arenas model.ArenaPool

	trainOnce sync.Once
	train     trainState // see Params
}

// Options controls Load.
type Options struct {
	// ConfigFiles are cn_clip model-config JSONs (the vision and text
	// halves) for a cn_clip checkpoint. When empty, Load uses the pair it
	// finds beside the checkpoint (in its directory, cn_clip_model_configs/
	// or model_configs/), and otherwise infers the shapes (see InferConfig).
	ConfigFiles []string
	// Vocab is the vocab.txt to use. When empty, Load uses vocab.txt in
	// the checkpoint's directory (HF: the model directory).
	Vocab string
	// HF makes a Hugging Face directory follow transformers instead of the
	// reference cn_clip code: BertTokenizer's rules (they differ on special
	// token strings and very long words) and the ChineseCLIPImageProcessor
	// order (RGB conversion before the resize, which differs for images with
	// alpha or a palette). The default is the reference behaviour.
	HF bool
	// Precision holds the linear layers' weights of both towers in
	// model.BF16 or model.Int8 (see model.Precision); "" and model.FP32
	// keep float32. They are converted after the float32 load.
	Precision model.Precision
}

// Load reads a Chinese-CLIP model: a Hugging Face ChineseCLIPModel
// directory (config.json with model.safetensors or pytorch_model.bin,
// vocab.txt, tokenizer_config.json, preprocessor_config.json) or a cn_clip
// checkpoint file (see Options for where its configuration and vocabulary
// come from). A directory without config.json holding exactly one .pt file
// loads that file.
func Load(path string, o Options) (*Model, error) {
	if _, err := model.ParsePrecision(string(o.Precision)); err != nil {
		return nil, fmt.Errorf("cnclip: %w", err)
	}
	m, err := load(path, o)
	if err != nil {
		return nil, err
	}
	m.UsePrecision(o.Precision)
	return m, nil
}

func load(path string, o Options) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cnclip: %w", err)
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(path, "config.json")); err != nil {
			if pts, _ := filepath.Glob(filepath.Join(path, "*.pt")); len(pts) == 1 {
				return loadCN(pts[0], o)
			}
			return nil, fmt.Errorf("cnclip: %s: neither a Hugging Face directory (config.json) nor a directory with one cn_clip .pt checkpoint", path)
		}
		return loadHF(path, o)
	}
	return loadCN(path, o)
}

func loadCN(path string, o Options) (*Model, error) {
	f, err := checkpoint.Open(path)
	if err != nil {
		return nil, err
	}
	dropNonWeights(f, "bert.pooler.")
	var cfg Config
	cfgFiles := o.ConfigFiles
	if len(cfgFiles) == 0 {
		cfgFiles = findCNConfigs(filepath.Dir(path))
	}
	if len(cfgFiles) > 0 {
		cfg, err = ReadCNConfigs(cfgFiles...)
	} else {
		cfg, err = InferConfig(f)
	}
	if err != nil {
		return nil, err
	}
	vocab := o.Vocab
	if vocab == "" {
		vocab = filepath.Join(filepath.Dir(path), "vocab.txt")
		if _, err := os.Stat(vocab); err != nil {
			return nil, fmt.Errorf("cnclip: %s: no vocab.txt beside the checkpoint: give the vocabulary (cn_clip/clip/vocab.txt) explicitly", path)
		}
	}
	v, err := wordpiece.LoadVocab(vocab)
	if err != nil {
		return nil, err
	}
	m, err := New(cfg, f)
	if err != nil {
		return nil, err
	}
	m.Tokenizer, m.VocabFile = wordpiece.New(v, wordpiece.CNCLIPOptions()), vocab
	m.Preprocess = ReferencePreprocess(cfg.Vision.ImageSize)
	m.Format, m.Path = "cn_clip", path
	return m, m.checkVocab()
}

// findCNConfigs returns the cn_clip model-config JSONs beside a checkpoint
// when there is exactly one vision and one text half.
func findCNConfigs(dir string) []string {
	for _, d := range []string{filepath.Join(dir, "cn_clip_model_configs"), filepath.Join(dir, "model_configs"), dir} {
		matches, _ := filepath.Glob(filepath.Join(d, "*.json"))
		sort.Strings(matches)
		var vision, text []string
		for _, p := range matches {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			s := string(b)
			switch {
			case strings.Contains(s, `"vision_width"`):
				vision = append(vision, p)
			case strings.Contains(s, `"text_hidden_size"`):
				text = append(text, p)
			}
		}
		if len(vision) == 1 && len(text) == 1 {
			return []string{vision[0], text[0]}
		}
	}
	return nil
}

func loadHF(dir string, o Options) (*Model, error) {
	cfg, err := ReadHFConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	f, err := checkpoint.Open(dir)
	if err != nil {
		return nil, err
	}
	f, err = fromHF(f)
	if err != nil {
		return nil, err
	}
	var tk *wordpiece.Tokenizer
	if o.Vocab != "" {
		v, err := wordpiece.LoadVocab(o.Vocab)
		if err != nil {
			return nil, err
		}
		opts := wordpiece.CNCLIPOptions()
		if o.HF {
			opts = wordpiece.Options{Lowercase: true, StripAccents: true, ChineseChars: true, MaxInputCharsPerWord: 100, HF: true}
		}
		tk = wordpiece.New(v, opts)
	} else {
		var maxLen int
		tk, maxLen, err = wordpiece.LoadHF(dir)
		if err != nil {
			return nil, err
		}
		if !o.HF {
			v, err := wordpiece.LoadVocab(filepath.Join(dir, "vocab.txt"))
			if err != nil {
				return nil, err
			}
			tk = wordpiece.New(v, wordpiece.CNCLIPOptions())
		}
		if maxLen > 0 && maxLen <= cfg.Text.MaxPositions {
			cfg.ContextLength = maxLen
		}
	}
	m, err := New(cfg, f)
	if err != nil {
		return nil, err
	}
	m.Tokenizer, m.VocabFile = tk, o.Vocab
	if o.Vocab == "" {
		m.VocabFile = filepath.Join(dir, "vocab.txt")
	}
	m.Preprocess = ReferencePreprocess(cfg.Vision.ImageSize)
	if o.HF {
		pp := filepath.Join(dir, "preprocessor_config.json")
		switch opts, err := imageproc.LoadHFConfig(pp); {
		case err == nil:
			m.Preprocess = opts
		case errors.Is(err, fs.ErrNotExist):
			m.Preprocess.HFOrder = true
			m.Preprocess.RescaleFactor = 1.0 / 255
		default:
			return nil, err
		}
	}
	m.Format, m.Path = "hf", dir
	return m, m.checkVocab()
}

// fromHF renames the text tower of a Hugging Face ChineseCLIPModel state
// dict (already through checkpoint.Open, which maps the CLIP-like vision
// tower and projections) from "text_model." to cn_clip's "bert." and drops
// the pooler and the id buffers.
func fromHF(f *checkpoint.File) (*checkpoint.File, error) {
	out := &checkpoint.File{Path: f.Path, Tensors: map[string]*checkpoint.Tensor{}, Metadata: f.Metadata, Format: f.Format}
	for _, n := range f.Names {
		t := f.Tensors[n]
		if t == nil {
			continue
		}
		name := n
		if rest, ok := strings.CutPrefix(n, "text_model."); ok {
			name = "bert." + rest
		}
		if strings.HasPrefix(name, "bert.pooler.") || strings.HasSuffix(name, ".position_ids") || strings.HasSuffix(name, ".token_type_ids") {
			continue
		}
		if _, dup := out.Tensors[name]; dup {
			return nil, fmt.Errorf("cnclip: %s: tensor %q appears twice", f.Path, name)
		}
		c := *t
		c.Name = name
		out.Tensors[name] = &c
		out.Names = append(out.Names, name)
	}
	return out, nil
}

// dropNonWeights removes the tensors cn_clip's load_from_name ignores:
// those under the given prefixes and position/token-type id buffers.
func dropNonWeights(f *checkpoint.File, prefixes ...string) {
	keep := f.Names[:0]
	for _, n := range f.Names {
		drop := strings.HasSuffix(n, ".position_ids") || strings.HasSuffix(n, ".token_type_ids")
		for _, p := range prefixes {
			drop = drop || strings.HasPrefix(n, p)
		}
		if drop {
			delete(f.Tensors, n)
		} else {
			keep = append(keep, n)
		}
	}
	f.Names = keep
}

// checkVocab checks the tokenizer against the text tower.
func (m *Model) checkVocab() error {
	v := m.Tokenizer.Vocab
	if v.Len() != m.Config.Text.VocabSize {
		return fmt.Errorf("cnclip: %s: the vocabulary has %d tokens but the text tower %d", m.Path, v.Len(), m.Config.Text.VocabSize)
	}
	if v.PAD != m.Config.Text.PadID {
		return fmt.Errorf("cnclip: %s: the vocabulary's [PAD] is %d but the model's pad id is %d", m.Path, v.PAD, m.Config.Text.PadID)
	}
	return nil
}

// ReferencePreprocess returns cn_clip's image_transform(n): a bicubic
// resize of both sides to n (a squash: the aspect ratio is not kept and
// nothing is cropped), RGB conversion after the resize, x/255, then the
// OpenAI mean/std.
func ReferencePreprocess(n int) imageproc.Options {
	o := imageproc.DefaultOptions(n)
	o.ResizeWidth, o.ResizeHeight = n, n
	return o
}

// Shapes returns every tensor name (reference names, "module." stripped)
// and shape a model of this configuration has.
func (c Config) Shapes() map[string][]int {
	s := c.Text.Shapes("bert.")
	v := c.Vision
	w, g := v.Width, v.ImageSize/v.PatchSize
	s["logit_scale"] = []int{}
	s["text_projection"] = []int{c.Text.Hidden, c.EmbedDim}
	s["visual.proj"] = []int{w, c.EmbedDim}
	s["visual.conv1.weight"] = []int{w, 3, v.PatchSize, v.PatchSize}
	s["visual.class_embedding"] = []int{w}
	s["visual.positional_embedding"] = []int{g*g + 1, w}
	for _, ln := range []string{"visual.ln_pre", "visual.ln_post"} {
		s[ln+".weight"], s[ln+".bias"] = []int{w}, []int{w}
	}
	for i := range v.Layers {
		p := fmt.Sprintf("visual.transformer.resblocks.%d.", i)
		s[p+"attn.in_proj_weight"] = []int{3 * w, w}
		s[p+"attn.in_proj_bias"] = []int{3 * w}
		s[p+"attn.out_proj.weight"] = []int{w, w}
		s[p+"attn.out_proj.bias"] = []int{w}
		for _, ln := range []string{"ln_1", "ln_2"} {
			s[p+ln+".weight"], s[p+ln+".bias"] = []int{w}, []int{w}
		}
		s[p+"mlp.c_fc.weight"] = []int{v.MLP, w}
		s[p+"mlp.c_fc.bias"] = []int{v.MLP}
		s[p+"mlp.c_proj.weight"] = []int{w, v.MLP}
		s[p+"mlp.c_proj.bias"] = []int{w}
	}
	return s
}

// New builds a model (without tokenizer and preprocessing) from a
// reference-named state dict (cn_clip names without "module."), checking
// every tensor's presence and shape against cfg first: the error names
// each missing, unexpected or mis-shaped tensor.
func New(cfg Config, f *checkpoint.File) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cnclip: %s: %w", f.Path, err)
	}
	if err := checkpoint.Validate(f, cfg.Shapes()); err != nil {
		note := ""
		if strings.HasPrefix(f.Format, "hf-") {
			note = " (Hugging Face names are shown as cn_clip's: text_model.* as bert.*, vision_model.* as visual.*)"
		}
		return nil, fmt.Errorf("cnclip: configuration (vision width %d, %d layers, patch %d, image %d; text hidden %d, %d layers, intermediate %d; embed %d)%s: %w",
			cfg.Vision.Width, cfg.Vision.Layers, cfg.Vision.PatchSize, cfg.Vision.ImageSize,
			cfg.Text.Hidden, cfg.Text.Layers, cfg.Text.Intermediate, cfg.EmbedDim, note, err)
	}
	text, err := bert.New(cfg.Text, f, "bert.")
	if err != nil {
		return nil, err
	}
	l := &loader{f: f}
	m := &Model{Config: cfg, Text: text, TextProj: l.get("text_projection")}
	if ls := l.get("logit_scale"); len(ls) == 1 {
		m.LogitScale = ls[0]
	}
	m.Visual = l.vit(cfg)
	if l.err != nil {
		return nil, l.err
	}
	m.Pack()
	return m, nil
}

type loader struct {
	f   *checkpoint.File
	err error
}

func (l *loader) get(name string) []float32 {
	v, err := l.f.Tensor(name).Float32()
	if err != nil && l.err == nil {
		l.err = fmt.Errorf("cnclip: %s: %w", l.f.Path, err)
	}
	return v
}

func (l *loader) linear(prefix string, in, out int) model.Linear {
	return model.Linear{W: l.get(prefix + ".weight"), B: l.get(prefix + ".bias"), In: in, Out: out}
}

func (l *loader) layerNorm(prefix string, dim int) model.LayerNorm {
	return model.LayerNorm{G: l.get(prefix + ".weight"), B: l.get(prefix + ".bias"), Dim: dim, Eps: 1e-5}
}

func (l *loader) vit(cfg Config) *model.VisionTransformer {
	v := cfg.Vision
	w := v.Width
	vt := &model.VisionTransformer{
		Patch:          model.Linear{W: l.get("visual.conv1.weight"), In: 3 * v.PatchSize * v.PatchSize, Out: w},
		PatchSize:      v.PatchSize,
		ImageSize:      v.ImageSize,
		Width:          w,
		ClassEmbedding: l.get("visual.class_embedding"),
		PosEmbedding:   l.get("visual.positional_embedding"),
		LNPre:          l.layerNorm("visual.ln_pre", w),
		LNPost:         l.layerNorm("visual.ln_post", w),
		Proj:           l.get("visual.proj"),
		EmbedDim:       cfg.EmbedDim,
	}
	for i := range v.Layers {
		p := fmt.Sprintf("visual.transformer.resblocks.%d.", i)
		vt.Transformer.Blocks = append(vt.Transformer.Blocks, model.Block{
			LN1: l.layerNorm(p+"ln_1", w),
			LN2: l.layerNorm(p+"ln_2", w),
			Attn: model.Attention{
				In:    model.Linear{W: l.get(p + "attn.in_proj_weight"), B: l.get(p + "attn.in_proj_bias"), In: w, Out: 3 * w},
				Out:   l.linear(p+"attn.out_proj", w, w),
				Heads: v.Heads,
			},
			MLP: model.MLP{FC: l.linear(p+"mlp.c_fc", w, v.MLP), Proj: l.linear(p+"mlp.c_proj", v.MLP, w), QuickGELU: true},
		})
	}
	return vt
}

// VisionLinears returns every Linear of the image tower.
func (m *Model) VisionLinears() []*model.Linear {
	ls := []*model.Linear{&m.Visual.Patch}
	for i := range m.Visual.Transformer.Blocks {
		b := &m.Visual.Transformer.Blocks[i]
		ls = append(ls, &b.Attn.In, &b.Attn.Out, &b.MLP.FC, &b.MLP.Proj)
	}
	return ls
}

// Pack packs every Linear weight of both towers (New does it; call again
// after the weights change).
func (m *Model) Pack() {
	for _, l := range m.VisionLinears() {
		l.Pack()
	}
	m.Text.Pack()
}

// UsePrecision converts the linear layers' weights of both towers to
// precision p (see model.Precision); for inference only.
func (m *Model) UsePrecision(p model.Precision) {
	for _, l := range m.VisionLinears() {
		l.UsePrecision(p)
	}
	m.Text.UsePrecision(p)
}

// EmbedDim returns the feature size.
func (m *Model) EmbedDim() int { return m.Config.EmbedDim }

// ImageSize returns the side of the square model input.
func (m *Model) ImageSize() int { return m.Config.Vision.ImageSize }

// ContextLength returns the token row length Tokenize produces.
func (m *Model) ContextLength() int { return m.Config.ContextLength }

// EncodeImage maps preprocessed pixels [batch, 3, S, S] to unnormalised
// image features [batch, embed] in out. trace may be nil.
func (m *Model) EncodeImage(out, pixels []float32, batch int, trace model.Tracer) {
	model.EncodeImageBatch(m.Visual, &m.arenas, out, pixels, batch, m.Config.EmbedDim, m.Config.Vision.ImageSize, trace)
}

// EncodeText maps token rows (all of one length, at most the text tower's
// positions; normally from Tokenize) to unnormalised text features
// [len(tokens), embed] in out: the final hidden state of [CLS] (position
// 0) times the text projection. trace may be nil; it also receives
// "text/pooled".
func (m *Model) EncodeText(out []float32, tokens [][]int32, trace model.Tracer) error {
	batch := len(tokens)
	if batch == 0 {
		return nil
	}
	E, H := m.Config.EmbedDim, m.Config.Text.Hidden
	if len(out) < batch*E {
		return fmt.Errorf("cnclip: output holds %d values, want %d", len(out), batch*E)
	}
	ar := m.arenas.Get()
	defer m.arenas.Put(ar)
	seq := len(tokens[0])
	hidden := ar.Get(batch * seq * H)
	if err := m.Text.Forward(ar, hidden, tokens, trace); err != nil {
		return fmt.Errorf("cnclip: %w", err)
	}
	pooled := ar.Get(batch * H)
	for b := range batch {
		copy(pooled[b*H:(b+1)*H], hidden[b*seq*H:])
	}
	if trace != nil {
		trace("text/pooled", pooled, []int{batch, H})
	}
	kernels.MatMul(out[:batch*E], pooled, m.TextProj, batch, E, H)
	return nil
}

// Tokenize turns texts into token rows of ContextLength: [CLS], the first
// ContextLength-2 WordPiece ids, [SEP], [PAD]s. truncated[i] reports that
// text i had more pieces than fit (they are cut, as cn_clip does).
func (m *Model) Tokenize(texts []string) (rows [][]int32, truncated []bool, err error) {
	return m.Tokenizer.EncodeBatch(texts, m.Config.ContextLength)
}

// Logits returns logits_per_image [nImages, nTexts] from unnormalised
// features as cn_clip's get_similarity computes them: both sides divided by
// their norms, then (exp(logitScale)·image)·textᵀ. logits_per_text is its
// transpose.
func Logits(img, txt []float32, nImages, nTexts, dim int, logitScale float32) []float32 {
	scale := float32(math.Exp(float64(logitScale)))
	in := normalized(img[:nImages*dim], dim)
	for i := range in {
		in[i] *= scale
	}
	tn := normalized(txt[:nTexts*dim], dim)
	out := make([]float32, nImages*nTexts)
	kernels.Sgemm(false, true, nImages, nTexts, dim, 1, in, dim, tn, dim, 0, out, nTexts)
	return out
}

// normalized returns a copy of the rows of x divided by their L2 norms.
func normalized(x []float32, dim int) []float32 {
	out := make([]float32, len(x))
	for r := 0; r+dim <= len(x); r += dim {
		var s float64
		for _, v := range x[r : r+dim] {
			s += float64(v) * float64(v)
		}
		n := float32(math.Sqrt(s))
		for i, v := range x[r : r+dim] {
			out[r+i] = v / n
		}
	}
	return out
}
