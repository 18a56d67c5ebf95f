package store

// Video frames live beside the image namespaces, in buckets of their own
// so that image search, counts and graphs never see them:
//
//	video/<id>         "info" → JSON ModelInfo (dim, source), "gen" → uint64
//	                   write counter
//	video/<id>/videos  absolute path → video record (see below)
//
// <id> is the same model id as the image namespace (indexer.ModelID).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"
)

var bucketVideos = []byte("videos")

func videoBucket(id string) []byte { return []byte("video/" + id) }

// VideoRecord is what the store keeps for one video under one model: the
// sampled frames' timestamps and L2-normalised embeddings.
type VideoRecord struct {
	// Size and ModTime (Unix nanoseconds) identify the file version the
	// frames were taken from.
	Size    int64
	ModTime int64
	// Sampling describes how frames were sampled ("fps=1", "frames=16");
	// a different sampling re-indexes the video.
	Sampling string
	// Duration is the video's length in seconds (0 when unknown).
	Duration float64
	// Step is the time in seconds one sampled frame stands for (1/fps,
	// or duration/N for N uniform frames): a frame at t covers
	// [t, t+Step).
	Step float64
	// Times are the frames' timestamps in seconds, increasing.
	Times []float64
	// Embeddings are the frames' L2-normalised embeddings, one per time.
	Embeddings [][]float32
	// Err says why the video could not be indexed; when set there are no
	// frames. Failures are kept so that a rerun skips the video until it
	// changes.
	Err string
	// Warning, for a video with frames, says why decoding stopped early
	// (a truncated file): the frames before that point are kept.
	Warning string
}

// Failed reports whether the record is a failure (no frames).
func (r *VideoRecord) Failed() bool { return len(r.Times) == 0 }

// VideoEntry is one video to write.
type VideoEntry struct {
	Path string
	VideoRecord
}

// Video record encoding, version 1, little-endian:
//
//	[0]      version (1)
//	[1]      flags (0)
//	[2:10]   size (int64)
//	[10:18]  mtime, Unix ns (int64)
//	[18:26]  duration (float64)
//	[26:34]  step (float64)
//	[34:38]  frame count n (uint32)
//	[38:42]  dimension d (uint32; 0 when n is 0)
//	[42:44]  sampling length, then the sampling text
//	[..+2]   error length, then the error text
//	[..+2]   warning length, then the warning text
//	         n float64 times, then n×d float32 embeddings
const (
	vrecVersion = 1
	vrecHeader  = 42
	maxFrames   = 1 << 24
	maxVText    = 1<<16 - 1
)

func encodeVideoRecord(r *VideoRecord) []byte {
	n := len(r.Times)
	d := 0
	if n > 0 {
		d = len(r.Embeddings[0])
	}
	b := make([]byte, vrecHeader, vrecHeader+6+len(r.Sampling)+len(r.Err)+len(r.Warning)+8*n+4*n*d)
	b[0] = vrecVersion
	binary.LittleEndian.PutUint64(b[2:], uint64(r.Size))
	binary.LittleEndian.PutUint64(b[10:], uint64(r.ModTime))
	binary.LittleEndian.PutUint64(b[18:], math.Float64bits(r.Duration))
	binary.LittleEndian.PutUint64(b[26:], math.Float64bits(r.Step))
	binary.LittleEndian.PutUint32(b[34:], uint32(n))
	binary.LittleEndian.PutUint32(b[38:], uint32(d))
	for _, s := range []string{r.Sampling, r.Err, r.Warning} {
		s = s[:min(len(s), maxVText)]
		b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	for _, t := range r.Times {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(t))
	}
	for _, e := range r.Embeddings {
		for _, v := range e {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	}
	return b
}

var errBadVideoRecord = errors.New("store: corrupt video record")

// decodeVideoRecord parses an encoded video record; with meta it skips the
// times and embeddings (Times stays nil, so use Err to tell failures).
func decodeVideoRecord(b []byte, meta bool) (VideoRecord, error) {
	var r VideoRecord
	if len(b) < vrecHeader {
		return r, fmt.Errorf("%w: %d bytes", errBadVideoRecord, len(b))
	}
	if b[0] != vrecVersion || b[1] != 0 {
		return r, fmt.Errorf("%w: version %d, flags %#x", errBadVideoRecord, b[0], b[1])
	}
	r.Size = int64(binary.LittleEndian.Uint64(b[2:]))
	r.ModTime = int64(binary.LittleEndian.Uint64(b[10:]))
	r.Duration = math.Float64frombits(binary.LittleEndian.Uint64(b[18:]))
	r.Step = math.Float64frombits(binary.LittleEndian.Uint64(b[26:]))
	n := int(binary.LittleEndian.Uint32(b[34:]))
	d := int(binary.LittleEndian.Uint32(b[38:]))
	if n > maxFrames || d > maxDim || (n > 0) != (d > 0) {
		return r, fmt.Errorf("%w: %d frames of %d values", errBadVideoRecord, n, d)
	}
	p := b[vrecHeader:]
	var texts [3]string
	for i := range texts {
		if len(p) < 2 {
			return r, fmt.Errorf("%w: truncated text", errBadVideoRecord)
		}
		l := int(binary.LittleEndian.Uint16(p))
		if len(p) < 2+l {
			return r, fmt.Errorf("%w: text of %d bytes, %d present", errBadVideoRecord, l, len(p)-2)
		}
		texts[i] = string(p[2 : 2+l])
		p = p[2+l:]
	}
	r.Sampling, r.Err, r.Warning = texts[0], texts[1], texts[2]
	if len(p) != 8*n+4*n*d {
		return r, fmt.Errorf("%w: %d frames of %d values in %d bytes", errBadVideoRecord, n, d, len(p))
	}
	if n == 0 && r.Err == "" {
		r.Err = "failed"
	}
	if meta {
		return r, nil
	}
	if n == 0 {
		return r, nil
	}
	r.Times = make([]float64, n)
	for i := range r.Times {
		r.Times[i] = math.Float64frombits(binary.LittleEndian.Uint64(p[8*i:]))
	}
	p = p[8*n:]
	flat := make([]float32, n*d)
	for i := range flat {
		flat[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
	}
	r.Embeddings = make([][]float32, n)
	for i := range r.Embeddings {
		r.Embeddings[i] = flat[i*d : (i+1)*d : (i+1)*d]
	}
	return r, nil
}

// EnsureVideoModel creates the video namespace of model id with frame
// embeddings of dim values, recording source (the model path) for
// display. An existing namespace with another dimension is an error.
func (s *Store) EnsureVideoModel(id string, dim int, source string) error {
	return s.ensureNamespace(videoBucket(id), bucketVideos, id, dim, source, "video frame embeddings")
}

// videoModel returns the video bucket of model id or an error naming the
// models that do have videos.
func (s *Store) videoModel(tx *bolt.Tx, id string) (*bolt.Bucket, error) {
	b := tx.Bucket(videoBucket(id))
	if b != nil && b.Bucket(bucketVideos) != nil {
		return b, nil
	}
	var have []string
	tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		if m, ok := bytes.CutPrefix(name, []byte("video/")); ok {
			have = append(have, string(m))
		}
		return nil
	})
	if len(have) == 0 {
		return nil, fmt.Errorf("store: %s: model %s: %w (no videos are indexed; run goclip video index)", s.path, id, ErrNoModel)
	}
	return nil, fmt.Errorf("store: %s: model %s: %w (videos are indexed with model %s; index with this model or pass the model those were made with)",
		s.path, id, ErrNoModel, joinIDs(have))
}

// PutVideos writes put and removes del under model id's videos in one
// transaction. Embeddings are L2-normalised on the way in; every frame
// must have a time and an embedding of the model's dimension.
func (s *Store) PutVideos(id string, put []VideoEntry, del []string) error {
	if len(put) == 0 && len(del) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := s.videoModel(tx, id)
		if err != nil {
			return err
		}
		mi, err := readInfo(b, id)
		if err != nil {
			return err
		}
		vb := b.Bucket(bucketVideos)
		for i := range put {
			e := &put[i]
			if e.Path == "" {
				return errors.New("store: empty video path")
			}
			r := e.VideoRecord
			if len(r.Times) != len(r.Embeddings) {
				return fmt.Errorf("store: %s: %d frame times for %d embeddings", e.Path, len(r.Times), len(r.Embeddings))
			}
			if len(r.Times) > maxFrames {
				return fmt.Errorf("store: %s: %d frames (at most %d)", e.Path, len(r.Times), maxFrames)
			}
			if len(r.Times) == 0 && r.Err == "" {
				r.Err = "no frames"
			}
			norm := make([][]float32, len(r.Embeddings))
			for j, v := range r.Embeddings {
				if len(v) != mi.Dim {
					return fmt.Errorf("store: %s: frame %d has a %d-d embedding for model %s of %d-d", e.Path, j, len(v), id, mi.Dim)
				}
				norm[j] = Normalize(v)
			}
			r.Embeddings = norm
			if err := vb.Put([]byte(e.Path), encodeVideoRecord(&r)); err != nil {
				return fmt.Errorf("store: %s: %w", e.Path, err)
			}
		}
		for _, p := range del {
			if err := vb.Delete([]byte(p)); err != nil {
				return fmt.Errorf("store: %s: %w", p, err)
			}
		}
		return b.Put(keyGen, u64(getU64(b.Get(keyGen))+1))
	})
}

// GetVideo returns the record of the video at path under model id.
func (s *Store) GetVideo(id, path string) (VideoRecord, bool, error) {
	return getRecord(s, func(tx *bolt.Tx) (*bolt.Bucket, error) { return s.videoModel(tx, id) },
		bucketVideos, "video", path, decodeVideoRecord)
}

// ScanVideos calls fn for every video record of model id in path order.
// With meta the times and embeddings are not decoded (use Err to tell
// failures). fn runs inside a read transaction: it must not write to the
// store.
func (s *Store) ScanVideos(id string, meta bool, fn func(path string, r VideoRecord) error) error {
	return scanRecords(s, func(tx *bolt.Tx) (*bolt.Bucket, error) { return s.videoModel(tx, id) },
		bucketVideos, "video", meta, decodeVideoRecord, fn)
}

// VideoGeneration returns the write counter of model id's videos: it
// changes whenever PutVideos writes, so readers can cache.
func (s *Store) VideoGeneration(id string) (uint64, error) {
	var gen uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := s.videoModel(tx, id)
		if err != nil {
			return err
		}
		gen = getU64(b.Get(keyGen))
		return nil
	})
	return gen, err
}
