package clip

import (
	"context"
	"fmt"

	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/model"
)

// TextHidden is the per-token output of one layer of the text tower, the
// conditioning that diffusion models read from CLIP.
type TextHidden struct {
	// Layer is the 0-based block whose output States holds (negative
	// requests are resolved: -1 is the last block).
	Layer int
	// FinalLN reports whether ln_final was applied to every token.
	FinalLN bool
	// Context and Width are the shape of each States entry.
	Context, Width int
	// States holds, per text, Context×Width values (row-major, one row
	// per token position, padding positions included).
	States [][]float32
	// Pooled holds, per text, the unnormalised projected text features
	// (EncodeTexts' output, whatever the layer): SDXL's pooled embedding.
	Pooled [][]float32
	// Tokens are the token rows the texts became; Truncated marks texts
	// cut to the context.
	Tokens    [][]int32
	Truncated []bool
}

// network returns the OpenAI-style CLIP network or an error that says why
// there is none.
func (m *Model) network(what string) (*model.Model, error) {
	if m.net == nil {
		return nil, fmt.Errorf("clip: %s needs an OpenAI/open_clip CLIP model; %s is a %s model", what, m.path, m.kind)
	}
	return m.net, nil
}

// EncodeTextHidden returns the hidden states of layer (0 = the first
// block's output; negative counts from the end, -1 = the last block, -2 =
// the penultimate) at every token position of each text, plus the pooled
// projection. finalLN applies the final LayerNorm to every token, as the
// last_hidden_state Stable Diffusion 1.x uses (layer -1, finalLN true);
// SDXL takes layer -2 with finalLN false. A layer out of range gives an
// error naming the valid range.
func (m *Model) EncodeTextHidden(ctx context.Context, texts []string, layer int, finalLN bool) (*TextHidden, error) {
	net, err := m.network("text hidden states")
	if err != nil {
		return nil, err
	}
	l, err := model.ResolveLayer(layer, len(net.Text.Transformer.Blocks), "text")
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	L, w, ed := m.ctxLen, net.Config.Text.Width, m.embed
	h := &TextHidden{Layer: l, FinalLN: finalLN, Context: L, Width: w,
		Tokens: make([][]int32, len(texts)), Truncated: make([]bool, len(texts))}
	for i, t := range texts {
		h.Tokens[i], h.Truncated[i] = m.Tokenize(t)
	}
	states := make([]float32, len(texts)*L*w)
	feat := make([]float32, len(texts)*ed)
	for lo := 0; lo < len(texts); lo += m.batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+m.batch, len(texts))
		if err := net.EncodeTextHidden(feat[lo*ed:hi*ed], states[lo*L*w:hi*L*w], h.Tokens[lo:hi], l, finalLN); err != nil {
			return nil, fmt.Errorf("clip: %w", err)
		}
	}
	h.States, h.Pooled = split(states, L*w), split(feat, ed)
	return h, nil
}

// LastLayer selects the last transformer block in EncodeTextHidden and
// PatchOptions.
const LastLayer = -1

// PatchOptions selects what EncodeImagePatches returns.
type PatchOptions struct {
	// Layer is the block whose output tokens are returned: 0 is the first
	// block, negative counts from the end. Set LastLayer (-1) for the
	// final tokens.
	Layer int
	// Project also returns every token after ln_post and the visual
	// projection, in the shared embedding space.
	Project bool
	// ValuePath takes the layer's attention value path alone (MaskCLIP):
	// spatially faithful dense features for heatmaps and segmentation.
	ValuePath bool
}

// ImagePatches holds every output token of the vision transformer for a
// set of images: the class token first, then the Grid×Grid patches row by
// row.
type ImagePatches struct {
	Layer     int
	Grid      int
	Tokens    int // Grid²+1
	Width     int // vision transformer width
	EmbedDim  int
	ValuePath bool
	// Raw holds, per image, Tokens×Width block outputs before ln_post.
	Raw [][]float32
	// Normed holds the same tokens after ln_post.
	Normed [][]float32
	// Projected holds, per image, Tokens×EmbedDim projected tokens
	// (Normed · visual.proj); nil unless PatchOptions.Project.
	Projected [][]float32
	// Features are the unnormalised image features (EncodeImages' output).
	Features [][]float32
}

// EncodeImagePatches runs the vision transformer on preprocessed pixels
// [n, 3, S, S] and returns its per-token outputs. Models with a ResNet
// image tower or a Chinese-CLIP model give an error.
func (m *Model) EncodeImagePatches(ctx context.Context, pixels []float32, n int, o PatchOptions) (*ImagePatches, error) {
	net, err := m.network("patch features")
	if err != nil {
		return nil, err
	}
	seq, grid, err := net.TokenCount()
	if err != nil {
		return nil, fmt.Errorf("clip: %s: %w", m.path, err)
	}
	l, err := model.ResolveLayer(o.Layer, net.Config.Vision.Layers, "image")
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	s := m.size
	if n <= 0 || len(pixels) != n*3*s*s {
		return nil, fmt.Errorf("clip: %d pixel values for %d images of 3×%d×%d", len(pixels), n, s, s)
	}
	w, ed := net.Config.Vision.Width, m.embed
	p := &ImagePatches{Layer: l, Grid: grid, Tokens: seq, Width: w, EmbedDim: ed, ValuePath: o.ValuePath}
	raw := make([]float32, n*seq*w)
	normed := make([]float32, n*seq*w)
	feat := make([]float32, n*ed)
	var proj []float32
	if o.Project {
		proj = make([]float32, n*seq*ed)
	}
	for lo := 0; lo < n; lo += m.batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+m.batch, n)
		dst := model.ImageTokens{Layer: l, Raw: raw[lo*seq*w : hi*seq*w], Normed: normed[lo*seq*w : hi*seq*w], ValuePath: o.ValuePath}
		if proj != nil {
			dst.Projected = proj[lo*seq*ed : hi*seq*ed]
		}
		if err := net.EncodeImageTokens(feat[lo*ed:hi*ed], pixels[lo*3*s*s:hi*3*s*s], hi-lo, dst); err != nil {
			return nil, fmt.Errorf("clip: %w", err)
		}
	}
	p.Raw, p.Normed, p.Features = split(raw, seq*w), split(normed, seq*w), split(feat, ed)
	if proj != nil {
		p.Projected = split(proj, seq*ed)
	}
	return p, nil
}

// EncodeImagePatchFiles decodes and preprocesses image files and returns
// their patch features (see EncodeImagePatches). A file that cannot be
// read fails the call with an error naming it.
func (m *Model) EncodeImagePatchFiles(ctx context.Context, paths []string, o PatchOptions) (*ImagePatches, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("clip: no image files")
	}
	pixels, err := imageproc.PreprocessFiles(paths, m.pre)
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	return m.EncodeImagePatches(ctx, pixels, len(paths), o)
}
