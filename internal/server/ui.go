package server

import (
	"bytes"
	"embed"
	"errors"
	"image"
	"image/jpeg"
	"io/fs"
	"net/http"
	"strconv"
	"sync"

	"github.com/goclip/goclip/internal/imageproc"
)

//go:embed web
var webFiles embed.FS

// webRoot is the web page's files (index.html, app.js, style.css).
var webRoot, _ = fs.Sub(webFiles, "web")

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) error {
	b, err := fs.ReadFile(webRoot, "index.html")
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
	return nil
}

func (s *Server) handleStatic(w http.ResponseWriter, r *http.Request) error {
	name := r.URL.Path[len("/static/"):]
	if _, err := fs.Stat(webRoot, name); err != nil || name == "" {
		return errorf(http.StatusNotFound, "no such file: %s", r.URL.Path)
	}
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, webRoot, name)
	return nil
}

// ThumbSize is the side of the square thumbnails served by /v1/thumb.
const ThumbSize = 256

// handleThumb serves a square JPEG thumbnail of an indexed image: the
// same resize and centre crop the model sees, EXIF orientation applied.
func (s *Server) handleThumb(w http.ResponseWriter, r *http.Request) error {
	path := r.URL.Query().Get("path")
	if path == "" {
		return errorf(http.StatusBadRequest, "missing ?path=")
	}
	if s.cfg.Searcher == nil {
		return errorf(http.StatusNotImplemented, "no index loaded")
	}
	b, ok := s.thumbs.get(path)
	if !ok {
		data, err := s.openIndexed(r, path)
		if err != nil {
			return err
		}
		if b, err = s.thumbnail(r, data, path); err != nil {
			return err
		}
		s.thumbs.put(path, b)
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("Cache-Control", "private, max-age=3600")
	w.Write(b)
	return nil
}

func (s *Server) thumbnail(r *http.Request, data []byte, name string) ([]byte, error) {
	select {
	case s.decode <- struct{}{}:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	defer func() { <-s.decode }()
	o := imageproc.DefaultOptions(ThumbSize)
	o.Interpolation = "bilinear"
	o.ApplyEXIF = true
	o.MaxPixels = s.cfg.MaxPixels
	img, err := imageproc.Decode(bytes.NewReader(data), name, o)
	if err != nil {
		if errors.Is(err, imageproc.ErrTooLarge) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "%v", trimPkg(err, name))
		}
		return nil, errorf(http.StatusUnsupportedMediaType, "%v", trimPkg(err, name))
	}
	rgb, err := imageproc.CropRGB(img, o)
	if err != nil {
		return nil, errorf(http.StatusUnsupportedMediaType, "%v", trimPkg(err, name))
	}
	out := image.NewRGBA(image.Rect(0, 0, ThumbSize, ThumbSize))
	for i, j := 0, 0; i < len(rgb); i, j = i+3, j+4 {
		out.Pix[j], out.Pix[j+1], out.Pix[j+2], out.Pix[j+3] = rgb[i], rgb[i+1], rgb[i+2], 255
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, out, &jpeg.Options{Quality: 85}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// thumbCache keeps the most recently made thumbnails (FIFO eviction).
type thumbCache struct {
	mu    sync.Mutex
	max   int
	m     map[string][]byte
	order []string
}

func newThumbCache(max int) *thumbCache {
	return &thumbCache{max: max, m: map[string][]byte{}}
}

func (c *thumbCache) get(k string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[k]
	return b, ok
}

func (c *thumbCache) put(k string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok {
		return
	}
	if len(c.order) >= c.max {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[k] = b
	c.order = append(c.order, k)
}
