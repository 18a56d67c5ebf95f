package server

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"math"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Moment is one video search result: a span of an indexed video and the
// cosine similarity of its best frame to the query. Times are in seconds.
type Moment struct {
	Video string  `json:"video"`
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	Score float64 `json:"score"`
	// Peak is the time of the best frame, shown as the thumbnail (0 when
	// unknown: the page then uses Start).
	Peak float64 `json:"peak,omitempty"`
}

// VideoSearcher finds moments of indexed videos. When Config.Videos is
// set, /v1/search answers "moments" for {"videos": true}, the web page
// shows a Videos section, and GET /v1/video/thumb and /v1/video/file serve
// frames and the files of indexed videos.
//
// VideoThumbnail and OpenVideo must refuse paths that are not indexed (the
// path comes from the client) with an error wrapping fs.ErrNotExist; the
// server answers 404 to it.
type VideoSearcher interface {
	// SearchMoments returns at most k moments for the L2-normalised
	// query, best first.
	SearchMoments(ctx context.Context, query []float32, k int) ([]Moment, error)
	// VideoThumbnail returns a JPEG of the frame at t seconds.
	VideoThumbnail(ctx context.Context, path string, t float64) ([]byte, error)
	// OpenVideo opens the video file for streaming.
	OpenVideo(ctx context.Context, path string) (io.ReadSeekCloser, error)
}

// videoTypes are the Content-Types of common video file extensions (the
// mime package's built-in table has none).
var videoTypes = map[string]string{
	".mp4":  "video/mp4",
	".m4v":  "video/mp4",
	".mov":  "video/quicktime",
	".webm": "video/webm",
	".mkv":  "video/x-matroska",
	".ogv":  "video/ogg",
	".avi":  "video/x-msvideo",
	".mpg":  "video/mpeg",
	".mpeg": "video/mpeg",
	".ts":   "video/mp2t",
	".3gp":  "video/3gpp",
}

func (s *Server) videoPath(r *http.Request) (string, error) {
	if s.cfg.Videos == nil {
		if s.cfg.NoVideos != "" {
			return "", errorf(http.StatusNotImplemented, "no video moments: %s", s.cfg.NoVideos)
		}
		return "", errorf(http.StatusNotImplemented, "no video index loaded: index videos with goclip video index and start goclip serve with --db PATH (ffmpeg needed)")
	}
	path := r.URL.Query().Get("path")
	if path == "" {
		return "", errorf(http.StatusBadRequest, "missing ?path=")
	}
	return path, nil
}

// handleVideoThumb serves a JPEG of the frame at ?t= seconds of the
// indexed video ?path=.
func (s *Server) handleVideoThumb(w http.ResponseWriter, r *http.Request) error {
	path, err := s.videoPath(r)
	if err != nil {
		return err
	}
	ts := r.URL.Query().Get("t")
	t := 0.0
	if ts != "" {
		if t, err = strconv.ParseFloat(ts, 64); err != nil || t < 0 || math.IsInf(t, 0) || math.IsNaN(t) {
			return errorf(http.StatusBadRequest, "?t=%q is not a time in seconds (a number ≥ 0)", ts)
		}
	}
	key := "video\x00" + path + "\x00" + strconv.FormatFloat(t, 'g', -1, 64)
	b, ok := s.thumbs.get(key)
	if !ok {
		select {
		case s.decode <- struct{}{}:
		case <-r.Context().Done():
			return r.Context().Err()
		}
		b, err = s.cfg.Videos.VideoThumbnail(r.Context(), path, t)
		<-s.decode
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return errorf(http.StatusNotFound, "%s: not an indexed video", path)
			}
			if r.Context().Err() != nil {
				return err
			}
			return errorf(http.StatusInternalServerError, "%s at %g s: %v", path, t, err)
		}
		s.thumbs.put(key, b)
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("Cache-Control", "private, max-age=3600")
	w.Write(b)
	return nil
}

// handleVideoFile serves an indexed video with Range support, so that an
// HTML5 <video> can seek.
func (s *Server) handleVideoFile(w http.ResponseWriter, r *http.Request) error {
	path, err := s.videoPath(r)
	if err != nil {
		return err
	}
	f, err := s.cfg.Videos.OpenVideo(r.Context(), path)
	if err != nil {
		return errorf(http.StatusNotFound, "%s: not an indexed video", path)
	}
	defer f.Close()
	if ct, ok := videoTypes[strings.ToLower(filepath.Ext(path))]; ok {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("Cache-Control", "private, max-age=3600")
	// A video streams for longer than the request timeout allows.
	http.NewResponseController(w).SetWriteDeadline(time.Time{})
	http.ServeContent(w, r, filepath.Base(path), time.Time{}, f)
	return nil
}
