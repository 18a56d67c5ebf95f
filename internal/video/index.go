package video

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goclip/goclip/internal/store"
)

// videoExts are the file extensions Index looks at.
var videoExts = map[string]bool{
	".mp4": true, ".m4v": true, ".mov": true, ".mkv": true, ".webm": true, ".avi": true,
	".mpg": true, ".mpeg": true, ".ts": true, ".mts": true, ".m2ts": true, ".wmv": true,
	".flv": true, ".3gp": true, ".ogv": true, ".vob": true,
}

// IsVideoName reports whether path has a video file extension.
func IsVideoName(path string) bool { return videoExts[strings.ToLower(filepath.Ext(path))] }

// IndexOptions configures Index.
type IndexOptions struct {
	// Encoder embeds frames; ModelID names its namespace in Store (the
	// same id as its image namespace, indexer.ModelID); Source is the
	// model path recorded for display.
	Encoder Encoder
	ModelID string
	Source  string
	Store   *store.Store
	// Sampling selects the frames (default 1 per second).
	Sampling Options
	// Batch is the number of frames per forward pass (default
	// DefaultBatch).
	Batch int
	// Progress, when set, is called before each video is embedded (done
	// videos handled so far of total found) and once at the end.
	Progress func(path string, done, total int)
}

// Failure is a video that could not be indexed, or (in
// IndexSummary.Truncated) one indexed only up to a decoding error.
type Failure struct {
	Path string
	Err  string
}

// IndexSummary counts what Index did.
type IndexSummary struct {
	Found, Added, Updated, Unchanged, Removed int
	// PrevFailed counts unchanged videos that failed before (skipped).
	PrevFailed int
	// Frames is the number of frames embedded in this run.
	Frames    int
	Failed    []Failure
	Truncated []Failure
	// Stats sums the per-video Embed statistics.
	Stats   Stats
	Elapsed time.Duration
}

// Index embeds the videos under roots (directories, walked recursively,
// or single files) into o.Store: for every video the sampled frames'
// times and embeddings. Videos whose size, modification time and
// sampling are unchanged are skipped; records of videos under a root
// that no longer exist are removed. A video that cannot be decoded is
// recorded as a failure (and reported); a truncated one keeps the frames
// before the damage. Each video is committed in its own transaction. The
// error is for the store, a missing ffmpeg or a cancelled ctx.
func Index(ctx context.Context, roots []string, o IndexOptions) (*IndexSummary, error) {
	start := time.Now()
	if o.Encoder == nil || o.Store == nil || o.ModelID == "" {
		return nil, errors.New("video: Encoder, ModelID and Store are required")
	}
	if err := o.Sampling.validate(); err != nil {
		return nil, err
	}
	if _, err := tools(o.Sampling.Tools); err != nil {
		return nil, err
	}
	if err := o.Store.EnsureVideoModel(o.ModelID, o.Encoder.EmbedDim(), o.Source); err != nil {
		return nil, err
	}
	prev := map[string]store.VideoRecord{}
	err := o.Store.ScanVideos(o.ModelID, true, func(p string, r store.VideoRecord) error {
		prev[p] = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	sum := &IndexSummary{}
	type file struct {
		path        string
		size, mtime int64
	}
	var files []file
	seen := map[string]bool{}
	var walked []string // directories whose vanished videos are dropped
	for _, r := range roots {
		abs, err := filepath.Abs(r)
		if err != nil {
			return nil, fmt.Errorf("video: %s: %w", r, err)
		}
		st, err := os.Stat(abs)
		if err != nil {
			sum.Failed = append(sum.Failed, Failure{abs, err.Error()})
			continue
		}
		if !st.IsDir() {
			if !seen[abs] {
				seen[abs] = true
				files = append(files, file{abs, st.Size(), st.ModTime().UnixNano()})
			}
			continue
		}
		walked = append(walked, abs)
		filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				sum.Failed = append(sum.Failed, Failure{p, err.Error()})
				if d != nil && d.IsDir() && p != abs {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() || !IsVideoName(p) || seen[p] {
				return nil
			}
			info, err := os.Stat(p)
			if err != nil {
				sum.Failed = append(sum.Failed, Failure{p, err.Error()})
				return nil
			}
			if info.Mode().IsRegular() {
				seen[p] = true
				files = append(files, file{p, info.Size(), info.ModTime().UnixNano()})
			}
			return nil
		})
	}
	if err := ctx.Err(); err != nil {
		return sum, err
	}
	sum.Found = len(files)
	sampling := o.Sampling.Sampling()
	for i, f := range files {
		pr, had := prev[f.path]
		if had && pr.Size == f.size && pr.ModTime == f.mtime && pr.Sampling == sampling {
			if pr.Err != "" {
				sum.PrevFailed++
			} else {
				sum.Unchanged++
			}
			continue
		}
		if o.Progress != nil {
			o.Progress(f.path, i, len(files))
		}
		rec := store.VideoRecord{Size: f.size, ModTime: f.mtime, Sampling: sampling}
		e, err := Embed(ctx, o.Encoder, f.path, o.Sampling, o.Batch)
		if ctx.Err() != nil {
			sum.Elapsed = time.Since(start)
			return sum, ctx.Err()
		}
		if errors.Is(err, ErrNoFFmpeg) {
			return sum, err
		}
		if e != nil {
			rec.Duration, rec.Step, rec.Times, rec.Embeddings = e.Duration, e.Step, e.Times, e.Embeddings
			sum.Frames += len(e.Times)
			sum.Stats.Frames += e.Stats.Frames
			sum.Stats.Decode += e.Stats.Decode
			sum.Stats.Preprocess += e.Stats.Preprocess
			sum.Stats.Embed += e.Stats.Embed
			sum.Stats.Wall += e.Stats.Wall
		}
		switch {
		case err != nil && e != nil:
			rec.Warning = err.Error()
			sum.Truncated = append(sum.Truncated, Failure{f.path, err.Error()})
		case err != nil:
			rec.Err = err.Error()
			sum.Failed = append(sum.Failed, Failure{f.path, err.Error()})
		}
		if had {
			sum.Updated++
		} else if rec.Err == "" {
			sum.Added++
		}
		if err := o.Store.PutVideos(o.ModelID, []store.VideoEntry{{Path: f.path, VideoRecord: rec}}, nil); err != nil {
			return sum, err
		}
	}
	var del []string
	for p := range prev {
		if seen[p] {
			continue
		}
		for _, root := range walked {
			if strings.HasPrefix(p, root+string(filepath.Separator)) {
				del = append(del, p)
				break
			}
		}
	}
	if err := o.Store.PutVideos(o.ModelID, nil, del); err != nil {
		return sum, err
	}
	sum.Removed = len(del)
	if o.Progress != nil {
		o.Progress("", len(files), len(files))
	}
	sum.Elapsed = time.Since(start)
	return sum, nil
}
