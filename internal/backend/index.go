package backend

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/indexer"
	"github.com/goclip/goclip/internal/store"
)

// ModelID returns indexer.ModelID for m, hashing the checkpoint through a
// throw-away embedded store (backends other than the embedded one have
// no file-hash cache), so every machine computes the same id.
func ModelID(m *clip.Model) (string, error) {
	dir, err := os.MkdirTemp("", "goclip-modelid-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(filepath.Join(dir, "hash.db"), nil)
	if err != nil {
		return "", err
	}
	defer st.Close()
	return indexer.ModelID(st, m)
}

// FileStat is what a file job carries: the path and the size and
// modification time seen when the job was made.
type FileStat struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime"`
}

// FilesResult counts what IndexFiles did.
type FilesResult struct {
	Embedded  int // new or changed files embedded and written
	Unchanged int // same content hash as the stored record: skipped
	Failed    int // files recorded as failures (corrupt, unreadable)
	// Failures are "path: reason" for each failed file.
	Failures []string
}

// IndexFiles embeds the files of paths that the backend does not already
// hold with the same content hash and upserts them; files that cannot
// be read or decoded are recorded as failures. Running it twice on the
// same files writes nothing the second time.
func IndexFiles(ctx context.Context, b Backend, m *clip.Model, modelID string, files []FileStat) (FilesResult, error) {
	var res FilesResult
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	prev, err := b.Lookup(ctx, modelID, paths)
	if err != nil {
		return res, err
	}
	var todo []Record
	var fails []Record
	for _, f := range files {
		r := Record{Path: f.Path, Size: f.Size, ModTime: f.ModTime}
		st, err := os.Stat(f.Path)
		if err == nil {
			r.Size, r.ModTime = st.Size(), st.ModTime().UnixNano()
			r.Hash, err = store.HashFile(f.Path)
		}
		if err != nil {
			r.Err = fmt.Sprintf("unreadable: %v", err)
			fails = append(fails, r)
			res.Failures = append(res.Failures, f.Path+": "+r.Err)
			continue
		}
		if p, ok := prev[f.Path]; ok && p.Hash == r.Hash && p.Err == "" {
			res.Unchanged++
			continue
		}
		todo = append(todo, r)
	}
	if len(todo) > 0 {
		ps := make([]string, len(todo))
		for i := range todo {
			ps[i] = todo[i].Path
		}
		embs, errs := m.EmbedImageFiles(ctx, ps)
		if err := ctx.Err(); err != nil {
			return res, err
		}
		for i := range todo {
			if i < len(embs) && embs[i] != nil {
				todo[i].Embedding = embs[i]
				res.Embedded++
			} else {
				msg := "embedding failed"
				if i < len(errs) && errs[i] != nil {
					msg = errs[i].Error()
				}
				todo[i].Err = msg
				res.Failed++
				res.Failures = append(res.Failures, todo[i].Path+": "+msg)
			}
		}
	}
	res.Failed += len(fails)
	all := append(todo, fails...)
	if len(all) == 0 {
		return res, nil
	}
	return res, b.Upsert(ctx, modelID, all)
}

// Walk calls fn for every image file (by extension, see
// indexer.IsImageName) under roots, in lexical order per directory.
// Roots may be files. Unreadable directories are reported through
// onErr and skipped.
func Walk(ctx context.Context, roots []string, fn func(FileStat) error, onErr func(path string, err error)) error {
	for _, root := range roots {
		abs, err := filepath.Abs(root)
		if err != nil {
			return err
		}
		err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			if err != nil {
				if onErr != nil {
					onErr(p, err)
				}
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() || !d.Type().IsRegular() || !indexer.IsImageName(p) {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				if onErr != nil {
					onErr(p, err)
				}
				return nil
			}
			return fn(FileStat{Path: p, Size: info.Size(), ModTime: info.ModTime().UnixNano()})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Index indexes roots into b in batches of batch files (default 32)
// without a queue: the path `goclip index --store URL` takes for a
// non-embedded backend. progress, when not nil, is called after each
// batch.
func Index(ctx context.Context, b Backend, m *clip.Model, modelID string, roots []string, batch int, progress func(done int)) (FilesResult, error) {
	if batch <= 0 {
		batch = 32
	}
	var total FilesResult
	if err := b.EnsureModel(ctx, modelID, m.EmbedDim(), m.Path()); err != nil {
		return total, err
	}
	var pending []FileStat
	done := 0
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		sort.Slice(pending, func(i, j int) bool { return pending[i].Path < pending[j].Path })
		r, err := IndexFiles(ctx, b, m, modelID, pending)
		total.Embedded += r.Embedded
		total.Unchanged += r.Unchanged
		total.Failed += r.Failed
		total.Failures = append(total.Failures, r.Failures...)
		done += len(pending)
		pending = pending[:0]
		if progress != nil {
			progress(done)
		}
		return err
	}
	err := Walk(ctx, roots, func(f FileStat) error {
		pending = append(pending, f)
		if len(pending) >= batch {
			return flush()
		}
		return nil
	}, nil)
	if err != nil {
		return total, err
	}
	return total, flush()
}
