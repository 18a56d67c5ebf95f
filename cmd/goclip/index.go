package main

import (
	"context"
	"fmt"
	"github.com/goclip/goclip/internal/backend"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/indexer"
	"github.com/goclip/goclip/internal/store"
)

func init() {
	register("index", "index photo folders into the embedded store (incremental, resumable)", runIndex)
}

// dbFlag adds --db with the default location.
func dbFlag(fs interface {
	StringVar(*string, string, string, string)
}, p *string) {
	fs.StringVar(p, "db", "", "index database (default $GOCLIP_DB, else $XDG_DATA_HOME/goclip/index.db or ~/.local/share/goclip/index.db)")
}

func dbPath(p string) (string, error) {
	if p != "" {
		return p, nil
	}
	return store.DefaultPath()
}

// isTerminal reports whether w is a character device.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newBar(w io.Writer, total int, desc string, quiet bool) *progressbar.ProgressBar {
	if quiet || !isTerminal(w) {
		return nil
	}
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetItsString("img"),
		progressbar.OptionShowIts(),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

func runIndex(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("index", stderr)
	var mf modelFlags
	mf.register(fs)
	var db string
	dbFlag(fs, &db)
	rehash := fs.Bool("rehash", false, "hash every file, even those whose size and mtime are unchanged")
	quiet := fs.Bool("quiet", false, "no progress bar")
	verbose := fs.Bool("v", false, "list every failed file (default: the first 20)")
	noGraph := fs.Bool("no-graph", false, "do not build the approximate-search graph at the end")
	queueURL := fs.String("queue", "", "publish indexing jobs to this NATS JetStream (nats://host:port) for `goclip worker`s instead of embedding here")
	storeArg := fs.String("store", "", "index into this store: weaviate://host:port/Class?grpc=port, or an embedded index path (like --db)")
	status := fs.Bool("status", false, "with --queue: print the queue's and every run's progress and failures")
	jsonOut := fs.Bool("json", false, "with --status: JSON output")
	if err := parse(fs, args); err != nil {
		return err
	}
	spec, err := storeSpec(db, *storeArg)
	if err != nil {
		return err
	}
	if !backend.IsURL(spec) {
		// An embedded index path given as --store is the same as --db.
		db, spec = spec, ""
	}
	if handled, err := indexExternal(ctx, &mf, *queueURL, spec, *status, *jsonOut, mf.batch, fs.Args(), stdout, stderr); handled {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("give one or more folders to index")
	}
	m, st, id, err := openModelStore(&mf, db, false)
	if err != nil {
		return err
	}
	defer st.Close()
	bar := newBar(stderr, -1, "indexing", *quiet)
	opts := indexer.Options{Model: m, ModelID: id, Store: st, Batch: mf.batch, Rehash: *rehash}
	if bar != nil {
		opts.Progress = func(done, found int, walkDone bool) {
			if walkDone {
				bar.ChangeMax(found)
			}
			bar.Set(done)
		}
	}
	sum, runErr := indexer.Run(ctx, fs.Args(), opts)
	if bar != nil {
		bar.Finish()
	}
	if sum != nil {
		printSummary(stderr, sum, *verbose)
	}
	if runErr != nil {
		return runErr
	}
	if !*noGraph {
		gbar := newBar(stderr, -1, "building search graph", *quiet)
		var pf func(done, total int)
		if gbar != nil {
			pf = func(done, total int) { gbar.ChangeMax(total); gbar.Set(done) }
		}
		built, err := st.BuildIndex(ctx, id, pf)
		if gbar != nil {
			gbar.Finish()
		}
		if err != nil {
			return err
		}
		if built {
			fmt.Fprintln(stderr, "goclip index: approximate-search graph built")
		}
	}
	n, _ := st.Count(id)
	fmt.Fprintf(stderr, "goclip index: %s holds %d images for model %s\n", st.Path(), n, id)
	return nil
}

func printSummary(w io.Writer, s *indexer.Summary, all bool) {
	rate := ""
	if emb := s.Added + s.Updated; emb > 0 && s.Elapsed > 0 {
		rate = fmt.Sprintf(", %.1f img/s", float64(emb)/s.Elapsed.Seconds())
	}
	fmt.Fprintf(w, "goclip index: %d images found in %v%s: %d new, %d re-embedded, %d unchanged, %d touched, %d copied from identical files, %d removed, %d failed (%d failed before, unchanged), %d non-image files ignored\n",
		s.Found, s.Elapsed.Round(time.Millisecond), rate, s.Added, s.Updated, s.Unchanged, s.Touched, s.Copied, s.Removed, len(s.Failed), s.PrevFailed, s.Ignored)
	for _, d := range s.DirErrors {
		fmt.Fprintf(w, "  unreadable directory %s: %s\n", d.Path, d.Err)
	}
	for i, f := range s.Failed {
		if i == 20 && !all {
			fmt.Fprintf(w, "  … and %d more (-v lists all)\n", len(s.Failed)-20)
			break
		}
		fmt.Fprintf(w, "  %s: %s\n", f.Kind, f.Err)
	}
}

// loadForStore loads the model and opens the store read-only, returning
// the model id too.
func loadForStore(mf *modelFlags, db string) (*clip.Model, *store.Store, string, error) {
	return openModelStore(mf, db, true)
}

// openModelStore loads the model and opens the store (read-only or for
// writing), returning the model's id in it.
func openModelStore(mf *modelFlags, db string, readOnly bool) (*clip.Model, *store.Store, string, error) {
	path, err := dbPath(db)
	if err != nil {
		return nil, nil, "", err
	}
	m, err := mf.load()
	if err != nil {
		return nil, nil, "", err
	}
	st, err := store.Open(path, &store.Options{ReadOnly: readOnly})
	if err != nil {
		return nil, nil, "", err
	}
	id, err := indexer.ModelID(st, m)
	if err != nil {
		st.Close()
		return nil, nil, "", err
	}
	return m, st, id, nil
}
