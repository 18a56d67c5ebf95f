package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// ---- Weaviate multi2vec-clip inference container ----

// VectorizeRequest is the body Weaviate's multi2vec-clip module POSTs to
// /vectorize. Either list may be absent.
type VectorizeRequest struct {
	Texts  []string `json:"texts"`
	Images []string `json:"images"` // base64
}

// VectorizeResponse is the inference container's answer; errors are a
// status ≥ 400 with {"error": …}.
type VectorizeResponse struct {
	TextVectors  [][]float32 `json:"textVectors"`
	ImageVectors [][]float32 `json:"imageVectors"`
}

// ParseVectorizeRequest decodes a /vectorize body. Unknown fields are
// ignored, as the Python container does.
func ParseVectorizeRequest(r io.Reader) (*VectorizeRequest, error) {
	var req VectorizeRequest
	if err := decodeJSON(r, &req, false); err != nil {
		return nil, err
	}
	return &req, nil
}

func (s *Server) handleNoContent(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) handleMeta(w http.ResponseWriter, r *http.Request) error {
	info := s.modelInfo()
	return writeJSON(w, http.StatusOK, map[string]any{
		"model_name":     info.Name,
		"model_path":     info.Path,
		"projection_dim": info.EmbedDim,
		"image_size":     info.ImageSize,
		"context_length": info.ContextLength,
		"logit_scale":    info.LogitScale,
		"backend":        "goclip",
	})
}

func (s *Server) handleVectorize(w http.ResponseWriter, r *http.Request) error {
	req, err := ParseVectorizeRequest(r.Body)
	if err != nil {
		return err
	}
	if err := s.countInputs(len(req.Texts), len(req.Images)); err != nil {
		return err
	}
	names := indexNames("images", len(req.Images))
	images := make([][]byte, len(req.Images))
	for i, b64 := range req.Images {
		if images[i], err = decodeBase64(b64, names[i]); err != nil {
			return err
		}
	}
	te, ie, err := s.embedBoth(r.Context(), req.Texts, images, names)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, VectorizeResponse{TextVectors: te, ImageVectors: ie})
}

// ---- immich machine learning ----

// ImmichEntry is one model request in immich's "entries" form field.
type ImmichEntry struct {
	ModelName string          `json:"modelName"`
	Options   json.RawMessage `json:"options,omitempty"`
}

// ImmichEntries is the "entries" form field of POST /predict: task → model
// type → entry, e.g. {"clip":{"visual":{"modelName":"ViT-B-32__openai"}}}
// or {"clip":{"textual":{"modelName":"…","options":{"language":"en"}}}}.
type ImmichEntries map[string]map[string]ImmichEntry

// ParseImmichEntries decodes and checks the entries field: goclip serves
// the "clip" task with the "visual" or "textual" type.
func ParseImmichEntries(data []byte) (kind string, err error) {
	var e ImmichEntries
	if err := json.Unmarshal(data, &e); err != nil {
		return "", errorf(http.StatusUnprocessableEntity, "invalid entries JSON: %v", jsonError(err))
	}
	if len(e) == 0 {
		return "", errorf(http.StatusUnprocessableEntity, `entries names no task (want {"clip":{"visual"|"textual":{"modelName":…}}})`)
	}
	for task := range e {
		if task != "clip" {
			return "", errorf(http.StatusUnprocessableEntity, "task %q is not supported: goclip serves only \"clip\"", task)
		}
	}
	types := e["clip"]
	if len(types) != 1 {
		return "", errorf(http.StatusUnprocessableEntity, `entries.clip must name exactly one of "visual" and "textual" (got %d)`, len(types))
	}
	for t := range types {
		if t != "visual" && t != "textual" {
			return "", errorf(http.StatusUnprocessableEntity, "model type %q is not supported for clip (want \"visual\" or \"textual\")", t)
		}
		kind = t
	}
	return kind, nil
}

func (s *Server) handlePing(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "pong")
	return nil
}

// handlePredict answers immich's POST /predict: multipart with "entries",
// and an "image" file or a "text" field. The CLIP embedding comes back as
// a JSON array inside a string, as immich expects.
func (s *Server) handlePredict(w http.ResponseWriter, r *http.Request) error {
	if !isMultipart(r) {
		return errorf(http.StatusUnprocessableEntity, "/predict takes multipart/form-data with \"entries\" and \"image\" or \"text\"")
	}
	parts, err := readMultipart(r)
	if err != nil {
		return err
	}
	var entries, text, image []byte
	for _, p := range parts {
		switch p.name {
		case "entries":
			entries = p.data
		case "text":
			text = p.data
		case "image":
			image = p.data
		}
	}
	if entries == nil {
		return errorf(http.StatusUnprocessableEntity, "missing form field \"entries\"")
	}
	kind, err := ParseImmichEntries(entries)
	if err != nil {
		return err
	}
	resp := map[string]any{}
	var emb []float32
	switch kind {
	case "visual":
		if image == nil {
			return errorf(http.StatusBadRequest, "clip visual needs an \"image\" file")
		}
		e, imgs, err := s.embedImages(r.Context(), [][]byte{image}, []string{"image"})
		if err != nil {
			return err
		}
		emb = e[0]
		resp["imageHeight"], resp["imageWidth"] = imgs[0].height, imgs[0].width
	case "textual":
		if text == nil {
			return errorf(http.StatusBadRequest, "clip textual needs a \"text\" field")
		}
		if !utf8.Valid(text) {
			return errorf(http.StatusBadRequest, "text is not valid UTF-8")
		}
		e, err := s.embedTexts(r.Context(), []string{string(text)}, "text")
		if err != nil {
			return err
		}
		emb = e[0]
	}
	resp["clip"] = formatVector(emb)
	return writeJSON(w, http.StatusOK, resp)
}

// formatVector writes v as a JSON array with the shortest float32 digits
// (what orjson writes for a float32 numpy array).
func formatVector(v []float32) string {
	b := make([]byte, 0, 2+len(v)*12)
	b = append(b, '[')
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(x), 'g', -1, 32)
	}
	return string(append(b, ']'))
}
