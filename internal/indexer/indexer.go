package indexer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/store"
)

// Options configures Run.
type Options struct {
	// Model embeds the images; ModelID names its namespace in Store
	// (see ModelID).
	Model   *clip.Model
	ModelID string
	Store   *store.Store
	// Batch is the number of images per forward pass and per committed
	// transaction (default 32).
	Batch int
	// Workers is the number of decoder goroutines (default GOMAXPROCS).
	Workers int
	// Rehash reads and hashes files whose size and modification time are
	// unchanged, re-embedding those whose content changed anyway.
	Rehash bool
	// Progress, when not nil, is called after each committed batch with
	// the files handled so far and the files found so far (which grows
	// while the walk goes on; walkDone says when it is final).
	Progress func(done, found int, walkDone bool)
}

// Failure is a file or directory that could not be indexed.
type Failure struct {
	Path string
	// Kind is "corrupt" (not decodable), "unsupported" (a format goclip
	// does not decode), "unreadable" (I/O or permission error) or
	// "directory" (a folder that could not be listed; its files keep
	// their records).
	Kind string
	Err  string
}

// Summary counts what a run did.
type Summary struct {
	Found     int // image files found
	Unchanged int // skipped: size and mtime (and with Rehash, content) unchanged
	Added     int // new files embedded
	Updated   int // changed files re-embedded
	Touched   int // mtime changed, same content: record updated, not re-embedded
	Copied    int // same content as an indexed file: embedding copied
	Removed   int // records of files no longer present dropped
	// Failed lists files that failed in this run; PrevFailed counts
	// unchanged files that failed before and were skipped.
	Failed     []Failure
	PrevFailed int
	Ignored    int // files without an image extension
	DirErrors  []Failure
	Elapsed    time.Duration
}

// imageExts are the extensions indexed. heic/heif/avif/jxl are listed so
// they are reported as unsupported rather than silently ignored.
var imageExts = map[string]bool{
	".jpg": true, ".jpeg": true, ".jpe": true, ".jfif": true, ".png": true, ".gif": true,
	".bmp": true, ".tif": true, ".tiff": true, ".webp": true,
	".heic": true, ".heif": true, ".avif": true, ".jxl": true,
}

// IsImageName reports whether path has an extension the indexer looks at.
func IsImageName(path string) bool { return imageExts[strings.ToLower(filepath.Ext(path))] }

type job struct {
	path        string
	size, mtime int64
	prev        *prevRec
}

type prevRec struct {
	size, mtime int64
	hash        [32]byte
	failed      bool
}

type itemKind int

const (
	kEncode itemKind = iota
	kTouch
	kCopy
	kFail
)

type item struct {
	kind    itemKind
	job     job
	hash    [32]byte
	pix     []float32
	from    string // kCopy: path whose embedding to copy
	failure Failure
}

// Run indexes roots (directories or single files) into opts.Store and
// returns what it did. Unreadable directories and bad files are reported
// in the summary, not as errors; the error is for the store, the model or
// a cancelled ctx (the summary then covers the batches committed).
func Run(ctx context.Context, roots []string, opts Options) (*Summary, error) {
	start := time.Now()
	if opts.Model == nil || opts.Store == nil || opts.ModelID == "" {
		return nil, errors.New("indexer: Model, ModelID and Store are required")
	}
	if opts.Batch <= 0 {
		opts.Batch = 32
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	m := opts.Model
	if err := opts.Store.EnsureModel(opts.ModelID, m.EmbedDim(), m.Path()); err != nil {
		return nil, err
	}
	abs := make([]string, len(roots))
	for i, r := range roots {
		a, err := filepath.Abs(r)
		if err != nil {
			return nil, fmt.Errorf("indexer: %s: %w", r, err)
		}
		abs[i] = a
	}
	// What the store already holds, without the embeddings.
	prev := map[string]*prevRec{}
	byHash := map[[32]byte]string{}
	err := opts.Store.Scan(opts.ModelID, true, func(p string, r store.Record) error {
		prev[p] = &prevRec{r.Size, r.ModTime, r.Hash, r.Err != ""}
		if r.Err == "" {
			byHash[r.Hash] = p
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sum := &Summary{}
	var mu sync.Mutex // guards sum.Found etc. written by the walker
	walkDone := false
	seen := map[string]bool{}
	var badDirs []string
	var walkFails []Failure
	jobs := make(chan job, 4*opts.Batch)
	items := make(chan item, 2*opts.Batch)
	walkerDone := make(chan struct{})

	// Stage 1: the walker.
	go func() {
		defer close(walkerDone)
		defer close(jobs)
		visit := func(p string, size, mtime int64) {
			mu.Lock()
			sum.Found++
			seen[p] = true
			pr := prev[p]
			skip := pr != nil && pr.size == size && pr.mtime == mtime && !opts.Rehash
			if skip {
				if pr.failed {
					sum.PrevFailed++
				} else {
					sum.Unchanged++
				}
			}
			mu.Unlock()
			if !skip {
				select {
				case jobs <- job{p, size, mtime, pr}:
				case <-ctx.Done():
				}
			}
		}
		for _, root := range abs {
			walk(ctx, root, visit, func(f Failure, isDir bool) {
				mu.Lock()
				defer mu.Unlock()
				if isDir {
					sum.DirErrors = append(sum.DirErrors, f)
					badDirs = append(badDirs, f.Path)
				} else {
					walkFails = append(walkFails, f)
				}
			}, func() { mu.Lock(); sum.Ignored++; mu.Unlock() })
		}
		mu.Lock()
		walkDone = ctx.Err() == nil
		mu.Unlock()
	}()

	// Stage 2: decoders.
	pre := m.PreprocessOptions()
	s := m.ImageSize()
	pixPool := sync.Pool{New: func() any { return make([]float32, 3*s*s) }}
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				it := decodeJob(j, pre, &pixPool, byHash)
				select {
				case items <- it:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(items) }()

	// Stage 3: batched encoder and writer (this goroutine).
	done := 0
	progress := func() {
		if opts.Progress != nil {
			mu.Lock()
			f, wd := sum.Found, walkDone
			mu.Unlock()
			opts.Progress(done, f, wd)
		}
	}
	var batch []item
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		n, err := commit(ctx, opts, batch, sum)
		for _, it := range batch {
			if it.pix != nil {
				pixPool.Put(it.pix)
			}
		}
		batch = batch[:0]
		done += n
		progress()
		return err
	}
	encodes := 0
	var runErr error
	for it := range items {
		batch = append(batch, it)
		if it.kind == kEncode {
			encodes++
		}
		if encodes >= opts.Batch || len(batch) >= 4*opts.Batch {
			if runErr = flush(); runErr != nil {
				cancel()
				break
			}
			encodes = 0
		}
	}
	if runErr == nil {
		runErr = flush()
	}
	for range items { // drain after an error
	}
	if runErr == nil {
		runErr = ctx.Err()
	}
	<-walkerDone
	complete := walkDone
	sum.Failed = append(walkFails, sum.Failed...)
	// Drop the records of files that are gone, only after a full walk and
	// never under a directory that could not be listed.
	if runErr == nil && complete {
		var del []string
		for p := range prev {
			if seen[p] || !under(p, abs) || under(p, badDirs) {
				continue
			}
			if _, err := os.Lstat(p); err == nil && !IsImageName(p) {
				continue
			}
			del = append(del, p)
		}
		for len(del) > 0 && runErr == nil {
			n := min(len(del), 1000)
			runErr = opts.Store.Apply(opts.ModelID, nil, del[:n])
			if runErr == nil {
				sum.Removed += n
			}
			del = del[n:]
		}
	}
	progress()
	sum.Elapsed = time.Since(start)
	return sum, runErr
}

// under reports whether p is one of roots or inside one.
func under(p string, roots []string) bool {
	for _, r := range roots {
		if p == r || strings.HasPrefix(p, strings.TrimSuffix(r, string(filepath.Separator))+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// walk visits the image files under root (root may be a file). Symbolic
// links to files are followed, links to directories are not.
func walk(ctx context.Context, root string, visit func(p string, size, mtime int64), fail func(Failure, bool), ignore func()) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			isDir := p == root || (d != nil && d.IsDir())
			kind := "unreadable"
			if isDir {
				kind = "directory"
			}
			fail(Failure{p, kind, err.Error()}, isDir)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !IsImageName(p) {
			ignore()
			return nil
		}
		info, err := os.Stat(p) // follows a symlink
		if err != nil {
			fail(Failure{p, "unreadable", err.Error()}, false)
			return nil
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		visit(p, info.Size(), info.ModTime().UnixNano())
		return nil
	})
}

// decodeJob reads, hashes and (when needed) decodes one file.
func decodeJob(j job, pre imageproc.Options, pool *sync.Pool, byHash map[[32]byte]string) item {
	data, err := os.ReadFile(j.path)
	if err != nil {
		return item{kind: kFail, job: j, failure: Failure{j.path, "unreadable", err.Error()}}
	}
	// The size and mtime recorded are the walker's: a file modified
	// after the stat is re-read on the next run.
	h := sha256.Sum256(data)
	if j.prev != nil && j.prev.hash == h && !j.prev.failed {
		return item{kind: kTouch, job: j, hash: h}
	}
	if from, ok := byHash[h]; ok && from != j.path {
		return item{kind: kCopy, job: j, hash: h, from: from}
	}
	img, err := imageproc.Decode(bytes.NewReader(data), j.path, pre)
	if err == nil {
		pix := pool.Get().([]float32)
		if err = imageproc.PreprocessInto(pix, img, pre); err == nil {
			return item{kind: kEncode, job: j, hash: h, pix: pix}
		}
		pool.Put(pix)
	}
	kind := "corrupt"
	if imageproc.Sniff(data) == "" {
		kind = "unsupported"
	}
	return item{kind: kFail, job: j, hash: h, failure: Failure{j.path, kind, err.Error()}}
}

// commit embeds the batch's images and writes every record of the batch
// in one transaction. It returns the number of files handled.
func commit(ctx context.Context, opts Options, batch []item, sum *Summary) (int, error) {
	m := opts.Model
	per := 3 * m.ImageSize() * m.ImageSize()
	var pix []float32
	var enc []int
	for i, it := range batch {
		if it.kind == kEncode {
			pix = append(pix, it.pix[:per]...)
			enc = append(enc, i)
		}
	}
	var emb [][]float32
	if len(enc) > 0 {
		var err error
		if emb, err = m.EncodePixels(ctx, pix, len(enc)); err != nil {
			return 0, err
		}
	}
	put := make([]store.Entry, 0, len(batch))
	var added, updated, touched, copied int
	var failed []Failure
	ei := 0
	for _, it := range batch {
		rec := store.Record{Size: it.job.size, ModTime: it.job.mtime, Hash: it.hash}
		switch it.kind {
		case kEncode:
			rec.Embedding = emb[ei]
			ei++
			if it.job.prev != nil {
				updated++
			} else {
				added++
			}
		case kTouch, kCopy:
			src := it.job.path
			if it.kind == kCopy {
				src = it.from
			}
			old, ok, err := opts.Store.Get(opts.ModelID, src)
			if err != nil {
				return 0, err
			}
			if !ok || old.Failed() || old.Hash != it.hash {
				// the source changed meanwhile: embed on the next run
				continue
			}
			rec.Embedding = old.Embedding
			if it.kind == kTouch {
				touched++
			} else {
				copied++
			}
		case kFail:
			if it.failure.Kind == "unreadable" {
				failed = append(failed, it.failure)
				continue // keep no record: retry next run
			}
			rec.Err = it.failure.Kind + ": " + it.failure.Err
			failed = append(failed, it.failure)
		}
		put = append(put, store.Entry{Path: it.job.path, Record: rec})
	}
	if err := opts.Store.Apply(opts.ModelID, put, nil); err != nil {
		return 0, err
	}
	sum.Added += added
	sum.Updated += updated
	sum.Touched += touched
	sum.Copied += copied
	sum.Failed = append(sum.Failed, failed...)
	return len(batch), nil
}
