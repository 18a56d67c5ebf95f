package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/imageproc"
)

// apiError is an error with the HTTP status to answer it with.
type apiError struct {
	Status     int
	Msg        string
	RetryAfter int // seconds; sent as Retry-After when > 0
}

func (e *apiError) Error() string { return e.Msg }

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// writeError writes {"error": msg} with e's status.
func writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, e.Status, struct {
		Error string `json:"error"`
	}{e.Msg})
}

// writeJSON writes v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
	return nil
}

// decodeJSON reads one JSON value from r into v. strict rejects fields v
// does not have. Errors are 4xx apiErrors that say what is wrong and where.
func decodeJSON(r io.Reader, v any, strict bool) error {
	dec := json.NewDecoder(r)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	// Exactly one value: anything but whitespace after it is an error.
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return errorf(http.StatusBadRequest, "malformed JSON: unexpected data after the request object (at byte %d)", dec.InputOffset())
		}
		return jsonError(err)
	}
	return nil
}

func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, "malformed JSON: empty request body")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "malformed JSON: the body ends in the middle of a value")
	case errors.As(err, &se):
		return errorf(http.StatusBadRequest, "malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		if te.Field == "" {
			return errorf(http.StatusBadRequest, "wrong JSON type: the request must be a JSON object, not %s", te.Value)
		}
		return errorf(http.StatusBadRequest, "wrong JSON type for field %q: got %s, want %s", te.Field, te.Value, jsonTypeName(te.Type.String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errorf(http.StatusBadRequest, "unknown field %s in the request", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return errorf(http.StatusBadRequest, "malformed JSON: %v", err)
}

func jsonTypeName(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "[]string":
		return "an array of strings"
	case "int", "int64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	}
	if strings.HasPrefix(goType, "[]") {
		return "an array"
	}
	return "an object"
}

// decodeBase64 decodes standard or URL-safe base64, padded or not,
// ignoring line breaks and a data: URL prefix. what names the input in
// errors.
func decodeBase64(s, what string) ([]byte, error) {
	if strings.HasPrefix(s, "data:") {
		i := strings.Index(s, ",")
		if i < 0 || !strings.HasSuffix(s[:i], ";base64") {
			return nil, errorf(http.StatusBadRequest, "%s: a data: URL must be base64 (data:<type>;base64,<data>)", what)
		}
		s = s[i+1:]
	}
	if strings.ContainsAny(s, "\r\n \t") {
		s = strings.Map(func(r rune) rune {
			switch r {
			case '\r', '\n', ' ', '\t':
				return -1
			}
			return r
		}, s)
	}
	if s == "" {
		return nil, errorf(http.StatusBadRequest, "%s: empty image", what)
	}
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if !strings.HasSuffix(s, "=") && len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "%s: not valid base64: %v", what, err)
	}
	return b, nil
}

// ---- multipart ----

// formPart is one part of a multipart body.
type formPart struct {
	name, filename string
	data           []byte
}

// readMultipart reads every part of a multipart/form-data request into
// memory (the body limit already bounds the total).
func readMultipart(r *http.Request) ([]formPart, error) {
	ct := r.Header.Get("Content-Type")
	_, params, err := mime.ParseMediaType(ct)
	if err != nil || params["boundary"] == "" {
		return nil, errorf(http.StatusBadRequest, "malformed multipart request: Content-Type %q has no boundary", ct)
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	var parts []formPart
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, multipartError(err)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return nil, multipartError(err)
		}
		parts = append(parts, formPart{name: p.FormName(), filename: p.FileName(), data: data})
		if len(parts) > 100_000 {
			return nil, errorf(http.StatusRequestEntityTooLarge, "too many multipart parts")
		}
	}
	return parts, nil
}

func multipartError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return errorf(http.StatusBadRequest, "malformed multipart body: %v", err)
}

func isMultipart(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "multipart/form-data"
}

// ---- embedding ----

// countInputs checks the number of inputs of a request against MaxInputs.
func (s *Server) countInputs(texts, images int) error {
	if texts+images > s.cfg.MaxInputs {
		return errorf(http.StatusRequestEntityTooLarge,
			"too many inputs: %d texts and %d images in one request, the limit is %d", texts, images, s.cfg.MaxInputs)
	}
	return nil
}

// embedTexts returns the normalised embeddings of texts through the text
// batcher. what names the field in errors ("texts", "labels").
func (s *Server) embedTexts(ctx context.Context, texts []string, what string) ([][]float32, error) {
	if len(texts) == 0 {
		return [][]float32{}, nil
	}
	rows := make([][]int32, len(texts))
	for i, t := range texts {
		if len(t) > s.cfg.MaxTextBytes {
			return nil, errorf(http.StatusRequestEntityTooLarge, "%s[%d]: text of %d bytes exceeds the limit of %d bytes", what, i, len(t), s.cfg.MaxTextBytes)
		}
		rows[i], _ = s.m.Tokenize(t)
	}
	return s.text.Do(ctx, rows)
}

// runText is the text batcher's run function. Identical token rows in a
// batch (the same label prompts from concurrent classify requests, a
// repeated query) are encoded once.
func (s *Server) runText(ctx context.Context, rows [][]int32) ([][]float32, error) {
	uniq := make([][]int32, 0, len(rows))
	index := make([]int, len(rows))
	seen := make(map[string]int, len(rows))
	for i, r := range rows {
		key := tokenKey(r)
		j, ok := seen[key]
		if !ok {
			j = len(uniq)
			seen[key] = j
			uniq = append(uniq, r)
		}
		index[i] = j
	}
	emb, err := s.m.EncodeTokens(ctx, uniq)
	if err != nil {
		return nil, err
	}
	for i, e := range emb {
		emb[i] = clip.Normalize(e)
	}
	out := make([][]float32, len(rows))
	for i, j := range index {
		out[i] = emb[j]
	}
	return out, nil
}

// tokenKey is a map key for a whole token row. (Id 0 is both the padding
// and the token "!", so the row cannot be cut at the first 0.)
func tokenKey(r []int32) string {
	b := make([]byte, 0, 4*len(r))
	for _, id := range r {
		b = append(b, byte(id), byte(id>>8), byte(id>>16), byte(id>>24))
	}
	return string(b)
}

// runImages is the image batcher's run function: pixels are 3×S×S each.
func (s *Server) runImages(ctx context.Context, pixels [][]float32) ([][]float32, error) {
	per := 3 * s.m.ImageSize() * s.m.ImageSize()
	flat := make([]float32, 0, len(pixels)*per)
	for _, p := range pixels {
		flat = append(flat, p...)
	}
	emb, err := s.m.EncodePixels(ctx, flat, len(pixels))
	if err != nil {
		return nil, err
	}
	for i, e := range emb {
		emb[i] = clip.Normalize(e)
	}
	return emb, nil
}

// decodedImage is an uploaded image ready for the image tower.
type decodedImage struct {
	pixels        []float32
	width, height int // as decoded (before any EXIF rotation)
}

// prepareImage decodes and preprocesses one uploaded image. what names it
// in errors ("images[2]").
func (s *Server) prepareImage(ctx context.Context, data []byte, what string) (*decodedImage, error) {
	select {
	case s.decode <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.decode }()
	img, err := imageproc.Decode(bytes.NewReader(data), what, s.pre)
	if err != nil {
		switch {
		case errors.Is(err, imageproc.ErrTooLarge):
			return nil, errorf(http.StatusRequestEntityTooLarge, "%s: %v", what, trimPkg(err, what))
		case errors.Is(err, imageproc.ErrUnknownFormat):
			return nil, errorf(http.StatusBadRequest, "%s: not an image: %v", what, trimPkg(err, what))
		}
		return nil, errorf(http.StatusBadRequest, "%s: cannot decode the image: %v", what, trimPkg(err, what))
	}
	n := s.m.ImageSize()
	pix := make([]float32, 3*n*n)
	if err := imageproc.PreprocessInto(pix, img, s.pre); err != nil {
		return nil, errorf(http.StatusBadRequest, "%s: %v", what, trimPkg(err, what))
	}
	return &decodedImage{pixels: pix, width: img.Width, height: img.Height}, nil
}

// trimPkg drops the "imageproc: <what>: " prefix of decoding errors (the
// handler names the input itself).
func trimPkg(err error, what string) string {
	msg := strings.TrimPrefix(err.Error(), "imageproc: ")
	return strings.TrimPrefix(msg, what+": ")
}

// embedImages decodes, preprocesses (in parallel) and embeds images.
// names[i] names image i in errors.
func (s *Server) embedImages(ctx context.Context, datas [][]byte, names []string) ([][]float32, []*decodedImage, error) {
	if len(datas) == 0 {
		return [][]float32{}, nil, nil
	}
	imgs := make([]*decodedImage, len(datas))
	errs := make([]error, len(datas))
	var wg sync.WaitGroup
	for i := range datas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			imgs[i], errs[i] = s.prepareImage(ctx, datas[i], names[i])
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	pix := make([][]float32, len(imgs))
	for i, im := range imgs {
		pix[i] = im.pixels
	}
	emb, err := s.image.Do(ctx, pix)
	return emb, imgs, err
}

// embedBoth embeds texts and images concurrently.
func (s *Server) embedBoth(ctx context.Context, texts []string, images [][]byte, names []string) (te, ie [][]float32, err error) {
	var terr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		te, terr = s.embedTexts(ctx, texts, "texts")
	}()
	ie, _, err = s.embedImages(ctx, images, names)
	<-done
	if terr != nil {
		return nil, nil, terr
	}
	return te, ie, err
}

func indexNames(field string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = field + "[" + strconv.Itoa(i) + "]"
	}
	return names
}
