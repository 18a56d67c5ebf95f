package server

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/imageproc"
)

// EmbedRequest is the JSON body of POST /v1/embed.
type EmbedRequest struct {
	Texts  []string `json:"texts"`
	Images []string `json:"images"` // base64 (standard or URL-safe) or data: URLs
}

// EmbedResponse is the answer of POST /v1/embed: one L2-normalised
// embedding per input, in request order.
type EmbedResponse struct {
	TextEmbeddings  [][]float32 `json:"text_embeddings"`
	ImageEmbeddings [][]float32 `json:"image_embeddings"`
}

// ClassifyRequest is the JSON body of POST /v1/classify.
type ClassifyRequest struct {
	Image  string   `json:"image"`
	Labels []string `json:"labels"`
	// Template turns a label into a prompt; "{}" is replaced by the label
	// (default "a photo of a {}.").
	Template *string `json:"template"`
}

// LabelProb is one label's zero-shot probability.
type LabelProb struct {
	Label string  `json:"label"`
	Prob  float32 `json:"prob"`
}

// ClassifyResponse lists every label, most probable first.
type ClassifyResponse struct {
	Labels []LabelProb `json:"labels"`
}

// SearchRequest is the JSON body of POST /v1/search: exactly one of Text,
// Image and Path.
type SearchRequest struct {
	Text  *string `json:"text"`
	Image *string `json:"image"`
	Path  *string `json:"path"` // an indexed image: search for similar ones
	Top   int     `json:"top"`
	// Videos asks for video moments too (Config.Videos must be set).
	Videos bool `json:"videos"`
}

// SearchResponse holds the hits, best first, and with "videos": true the
// video moments, best first.
type SearchResponse struct {
	Results []Hit    `json:"results"`
	Moments []Moment `json:"moments,omitzero"`
}

// DefaultTemplate is the prompt template of /v1/classify.
const DefaultTemplate = "a photo of a {}."

// Search result count default and limit.
const (
	DefaultTop = 10
	MaxTop     = 1000
)

// ParseEmbedRequest decodes and validates a JSON /v1/embed body.
func ParseEmbedRequest(r io.Reader) (*EmbedRequest, error) {
	var req EmbedRequest
	if err := decodeJSON(r, &req, true); err != nil {
		return nil, err
	}
	return &req, nil
}

// ParseClassifyRequest decodes and validates a /v1/classify body.
func ParseClassifyRequest(r io.Reader) (*ClassifyRequest, error) {
	var req ClassifyRequest
	if err := decodeJSON(r, &req, true); err != nil {
		return nil, err
	}
	if req.Image == "" {
		return nil, errorf(http.StatusBadRequest, `missing "image": give the image to classify as base64`)
	}
	if len(req.Labels) == 0 {
		return nil, errorf(http.StatusBadRequest, `missing "labels": give at least one label`)
	}
	for i, l := range req.Labels {
		if strings.TrimSpace(l) == "" {
			return nil, errorf(http.StatusBadRequest, "labels[%d] is empty", i)
		}
	}
	if req.Template == nil {
		t := DefaultTemplate
		req.Template = &t
	} else if !strings.Contains(*req.Template, "{}") {
		return nil, errorf(http.StatusBadRequest, `template %q has no "{}" to put the label in`, *req.Template)
	}
	return &req, nil
}

// ParseSearchRequest decodes and validates a /v1/search body.
func ParseSearchRequest(r io.Reader) (*SearchRequest, error) {
	var req SearchRequest
	if err := decodeJSON(r, &req, true); err != nil {
		return nil, err
	}
	n := 0
	for _, p := range []*string{req.Text, req.Image, req.Path} {
		if p != nil {
			n++
		}
	}
	if n != 1 {
		return nil, errorf(http.StatusBadRequest, `give exactly one of "text", "image" (base64) and "path" to search with (got %d)`, n)
	}
	switch {
	case req.Top < 0:
		return nil, errorf(http.StatusBadRequest, `"top" must be positive, got %d`, req.Top)
	case req.Top == 0:
		req.Top = DefaultTop
	case req.Top > MaxTop:
		return nil, errorf(http.StatusBadRequest, `"top" is %d, at most %d results are returned`, req.Top, MaxTop)
	}
	return &req, nil
}

func (s *Server) handleEmbed(w http.ResponseWriter, r *http.Request) error {
	var texts []string
	var images [][]byte
	var names []string
	if isMultipart(r) {
		parts, err := readMultipart(r)
		if err != nil {
			return err
		}
		for _, p := range parts {
			switch p.name {
			case "text", "texts":
				if !utf8.Valid(p.data) {
					return errorf(http.StatusBadRequest, "multipart field %q #%d is not valid UTF-8", p.name, len(texts))
				}
				texts = append(texts, string(p.data))
			case "image", "images":
				what := fmt.Sprintf("images[%d]", len(images))
				if p.filename != "" {
					what += " (" + p.filename + ")"
				}
				data := p.data
				if imageproc.Sniff(data) == "" && p.filename == "" {
					// A text field holding base64.
					if b, err := decodeBase64(string(data), what); err == nil {
						data = b
					}
				}
				images = append(images, data)
				names = append(names, what)
			default:
				return errorf(http.StatusBadRequest, "unknown multipart field %q (want \"text\" or \"image\")", p.name)
			}
		}
	} else {
		req, err := ParseEmbedRequest(r.Body)
		if err != nil {
			return err
		}
		if err := s.countInputs(len(req.Texts), len(req.Images)); err != nil {
			return err
		}
		texts = req.Texts
		names = indexNames("images", len(req.Images))
		for i, b64 := range req.Images {
			b, err := decodeBase64(b64, names[i])
			if err != nil {
				return err
			}
			images = append(images, b)
		}
	}
	if len(texts)+len(images) == 0 {
		return errorf(http.StatusBadRequest, `nothing to embed: give "texts" and/or "images"`)
	}
	if err := s.countInputs(len(texts), len(images)); err != nil {
		return err
	}
	te, ie, err := s.embedBoth(r.Context(), texts, images, names)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, EmbedResponse{TextEmbeddings: te, ImageEmbeddings: ie})
}

func (s *Server) handleClassify(w http.ResponseWriter, r *http.Request) error {
	req, err := ParseClassifyRequest(r.Body)
	if err != nil {
		return err
	}
	if err := s.countInputs(len(req.Labels), 1); err != nil {
		return err
	}
	data, err := decodeBase64(req.Image, "image")
	if err != nil {
		return err
	}
	prompts := make([]string, len(req.Labels))
	for i, l := range req.Labels {
		prompts[i] = strings.ReplaceAll(*req.Template, "{}", l)
	}
	te, ie, err := s.embedBoth(r.Context(), prompts, [][]byte{data}, []string{"image"})
	if err != nil {
		return err
	}
	probs := classify(ie[0], te, s.m.LogitScale())
	out := make([]LabelProb, len(req.Labels))
	for i, l := range req.Labels {
		out[i] = LabelProb{Label: l, Prob: probs[i]}
	}
	slices.SortStableFunc(out, func(a, b LabelProb) int { return cmp.Compare(b.Prob, a.Prob) })
	return writeJSON(w, http.StatusOK, ClassifyResponse{Labels: out})
}

// classify returns softmax(scale · cos(image, text_i)) over the texts;
// the embeddings are already normalised.
func classify(image []float32, texts [][]float32, scale float32) []float32 {
	logits := make([]float32, len(texts))
	for i, t := range texts {
		var dot float32
		for c := range image {
			dot += image[c] * t[c]
		}
		logits[i] = scale * dot
	}
	return clip.Softmax(logits)
}

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request) error {
	req, err := ParseSearchRequest(r.Body)
	if err != nil {
		return err
	}
	if req.Videos && s.cfg.Videos == nil {
		if s.cfg.NoVideos != "" {
			return errorf(http.StatusNotImplemented, "no video moments: %s", s.cfg.NoVideos)
		}
		return errorf(http.StatusNotImplemented, "no video index to search: index videos with goclip video index and start goclip serve with --db PATH (ffmpeg needed)")
	}
	if s.cfg.Searcher == nil && !req.Videos {
		return errorf(http.StatusNotImplemented, "no index to search: start goclip serve with --db PATH or --store URL")
	}
	ctx := r.Context()
	var q []float32
	switch {
	case req.Text != nil:
		if *req.Text == "" {
			return errorf(http.StatusBadRequest, `"text" is empty`)
		}
		if q, err = s.textQuery(ctx, *req.Text); err != nil {
			return err
		}
	case req.Image != nil:
		data, err := decodeBase64(*req.Image, "image")
		if err != nil {
			return err
		}
		e, _, err := s.embedImages(ctx, [][]byte{data}, []string{"image"})
		if err != nil {
			return err
		}
		q = e[0]
	default:
		data, err := s.openIndexed(r, *req.Path)
		if err != nil {
			return err
		}
		e, _, err := s.embedImages(ctx, [][]byte{data}, []string{*req.Path})
		if err != nil {
			return err
		}
		q = e[0]
	}
	var resp SearchResponse
	if s.cfg.Searcher != nil {
		if resp.Results, err = s.cfg.Searcher.Search(ctx, q, req.Top); err != nil {
			return fmt.Errorf("search: %w", err)
		}
	}
	if resp.Results == nil {
		resp.Results = []Hit{}
	}
	if req.Videos {
		if resp.Moments, err = s.cfg.Videos.SearchMoments(ctx, q, req.Top); err != nil {
			return fmt.Errorf("video search: %w", err)
		}
		if resp.Moments == nil {
			resp.Moments = []Moment{}
		}
	}
	return writeJSON(w, http.StatusOK, resp)
}

// maxFileBytes bounds an indexed file read for a thumbnail or a search by
// example.
const maxFileBytes = 256 << 20

// openIndexed reads an indexed file through the Searcher's FileOpener.
func (s *Server) openIndexed(r *http.Request, path string) ([]byte, error) {
	fo, ok := s.cfg.Searcher.(FileOpener)
	if !ok || s.cfg.Searcher == nil {
		return nil, errorf(http.StatusNotImplemented, "this index cannot open its files")
	}
	if path == "" {
		return nil, errorf(http.StatusBadRequest, "empty path")
	}
	f, err := fo.OpenFile(r.Context(), path)
	if err != nil {
		return nil, errorf(http.StatusNotFound, "%s: %v", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, errorf(http.StatusInternalServerError, "%s: %v", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, errorf(http.StatusRequestEntityTooLarge, "%s is larger than %d bytes", path, maxFileBytes)
	}
	return data, nil
}

// ModelInfo describes the loaded model (GET /v1/models).
type ModelInfo struct {
	Name          string  `json:"name"`
	Path          string  `json:"path"`
	EmbedDim      int     `json:"embed_dim"`
	ImageSize     int     `json:"image_size"`
	ContextLength int     `json:"context_length"`
	LogitScale    float32 `json:"logit_scale"`
	// Precision of the linear layers' weights: fp32, bf16 or int8.
	Precision string `json:"precision"`
}

func (s *Server) modelInfo() ModelInfo {
	return ModelInfo{
		Name:          s.cfg.ModelName,
		Path:          s.m.Path(),
		EmbedDim:      s.m.EmbedDim(),
		ImageSize:     s.m.ImageSize(),
		ContextLength: s.m.ContextLength(),
		LogitScale:    s.m.LogitScale(),
		Precision:     s.m.Precision(),
	}
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, struct {
		Models []ModelInfo `json:"models"`
	}{[]ModelInfo{s.modelInfo()}})
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, struct {
		Status   string  `json:"status"`
		Model    string  `json:"model"`
		Search   bool    `json:"search"`
		Videos   bool    `json:"videos"`
		UptimeS  float64 `json:"uptime_s"`
		Queued   int     `json:"queued"`
		Inflight int64   `json:"inflight"`
	}{"ok", s.cfg.ModelName, s.cfg.Searcher != nil, s.cfg.Videos != nil, time.Since(s.started).Seconds(),
		s.text.Queued() + s.image.Queued(), s.metrics.inflight.Load()})
}
