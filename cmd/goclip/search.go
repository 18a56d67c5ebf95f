package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/backend"
	"github.com/goclip/goclip/internal/indexer"
	"github.com/goclip/goclip/internal/server"
	"github.com/goclip/goclip/internal/store"
	"github.com/goclip/goclip/internal/video"
)

func init() {
	register("search", `search indexed photos by text, image or a combination ("beach" + 2*"sunset" - "people")`, runSearch)
	register("dupes", "report near-duplicate indexed photos (cosine above a threshold)", runDupes)
}

func runSearch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("search", stderr)
	var mf modelFlags
	mf.register(fs)
	var db, storeURL string
	dbFlag(fs, &db)
	storeFlag(fs, &storeURL)
	var images stringList
	fs.Var(&images, "image", "image file to search with (repeatable; added to the text terms with weight 1)")
	top := fs.Int("top", 10, "number of results")
	asJSON := fs.Bool("json", false, `write one JSON array [{"path":…,"score":…},…], best first`)
	open := fs.Bool("open", false, "open the best match with the system viewer")
	exact := fs.Bool("exact", false, "brute-force search even above the approximate-search threshold (embedded store only)")
	if err := parse(fs, args); err != nil {
		return err
	}
	spec, err := storeSpec(db, storeURL)
	if err != nil {
		return err
	}
	qtext := strings.TrimSpace(strings.Join(fs.Args(), " "))
	if qtext == "" && len(images) == 0 {
		return usagef(`give a query text (e.g. "a dog on the beach") or --image FILE`)
	}
	if *top < 1 {
		return usagef("--top must be at least 1")
	}
	if qtext != "" {
		if _, err := indexer.ParseQuery(qtext); err != nil {
			return usagef("%v", err)
		}
	}
	m, b, id, err := openSearchBackend(ctx, &mf, spec)
	if err != nil {
		return err
	}
	defer b.Close()
	res, err := backend.SearchQuery(ctx, b, m, id, backend.Query{Text: qtext, Images: images, Top: *top, Exact: *exact})
	if err != nil {
		if errors.Is(err, backend.ErrUnsupported) {
			return fmt.Errorf("--exact: %w", err)
		}
		return err
	}
	if err := writeResults(stdout, res, *asJSON); err != nil {
		return err
	}
	if *open && len(res) > 0 {
		return openFile(res[0].Path)
	}
	return nil
}

// writeResults prints search results as goclip search does: a score/path
// table, or with asJSON one JSON array [{"path","score"},…].
func writeResults(w io.Writer, res []backend.Result, asJSON bool) error {
	if asJSON {
		if res == nil {
			res = []backend.Result{}
		}
		return json.NewEncoder(w).Encode(res)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "score\tpath")
	for _, r := range res {
		fmt.Fprintf(tw, "%.4f\t%s\n", r.Score, r.Path)
	}
	return tw.Flush()
}

// storeFlag adds --store, the same flag as goclip index and worker take.
func storeFlag(fs interface {
	StringVar(*string, string, string, string)
}, p *string) {
	fs.StringVar(p, "store", "", "store to search: weaviate://host:httpPort/ClassName?grpc=grpcPort, or an embedded index path (like --db; default: --db's default)")
}

// storeSpec returns the store named by --db and --store (at most one of
// them, or both the same): a backend URL, an embedded index path, or ""
// for the default embedded index.
func storeSpec(db, storeURL string) (string, error) {
	if storeURL == "" || db == "" || db == storeURL {
		return cmp.Or(storeURL, db), nil
	}
	return "", usagef("give --db or --store, not both (--db %q, --store %q)", db, storeURL)
}

// storeOpenTimeout bounds connecting to a store given by URL (retries
// included), so an unreachable server fails instead of hanging.
const storeOpenTimeout = time.Minute

// redactSpec is spec without a password, for messages.
func redactSpec(spec string) string {
	if u, err := url.Parse(spec); err == nil {
		return u.Redacted()
	}
	return spec
}

// openURLBackend opens the store of a backend URL (backend.IsURL) for
// searching and checks that it holds m's embeddings; errors name the URL.
func openURLBackend(ctx context.Context, spec string, m *clip.Model) (backend.Backend, string, error) {
	id, err := backend.ModelID(m)
	if err != nil {
		return nil, "", err
	}
	octx, cancel := context.WithTimeout(ctx, storeOpenTimeout)
	defer cancel()
	b, err := backend.Open(octx, spec)
	if err != nil {
		return nil, "", storeError(spec, err)
	}
	if err := backend.CheckModel(octx, b, id, m.EmbedDim()); err != nil {
		b.Close()
		return nil, "", storeError(spec, err)
	}
	return b, id, nil
}

// storeError makes err name the store URL spec (without its password).
func storeError(spec string, err error) error {
	r := redactSpec(spec)
	if strings.Contains(err.Error(), r) {
		return err
	}
	return fmt.Errorf("--store %s: %w", r, err)
}

// openSearchBackend loads the model and opens the store of spec for
// searching (an embedded index read-only), returning the model's id in
// it. It is the one path goclip search takes for every backend.
func openSearchBackend(ctx context.Context, mf *modelFlags, spec string) (*clip.Model, backend.Backend, string, error) {
	if !backend.IsURL(spec) {
		m, st, id, err := loadForStore(mf, spec)
		if err != nil {
			return nil, nil, "", err
		}
		return m, &backend.Embedded{St: st}, id, nil
	}
	m, err := mf.load()
	if err != nil {
		return nil, nil, "", err
	}
	b, id, err := openURLBackend(ctx, spec, m)
	if err != nil {
		return nil, nil, "", err
	}
	return m, b, id, nil
}

func openFile(path string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", path)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", path)
	default:
		cmd = exec.Command("xdg-open", path)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	return cmd.Process.Release()
}

func runDupes(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dupes", stderr)
	var mf modelFlags
	mf.register(fs)
	var db string
	dbFlag(fs, &db)
	threshold := fs.Float64("threshold", 0.95, "cosine similarity from which two photos count as near-duplicates")
	asJSON := fs.Bool("json", false, `write JSON: {"groups":[[path,…],…],"pairs":[{"a":…,"b":…,"score":…},…]}`)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %q", fs.Args())
	}
	if *threshold <= 0 || *threshold > 1 {
		return usagef("--threshold must be in (0, 1]")
	}
	_, st, id, err := loadForStore(&mf, db)
	if err != nil {
		return err
	}
	defer st.Close()
	pairs, err := st.Dupes(ctx, id, float32(*threshold))
	if err != nil {
		return err
	}
	groups := store.Groups(pairs)
	if *asJSON {
		type jp struct {
			A     string  `json:"a"`
			B     string  `json:"b"`
			Score float32 `json:"score"`
		}
		out := struct {
			Groups [][]string `json:"groups"`
			Pairs  []jp       `json:"pairs"`
		}{Groups: groups, Pairs: []jp{}}
		if out.Groups == nil {
			out.Groups = [][]string{}
		}
		for _, p := range pairs {
			out.Pairs = append(out.Pairs, jp{p.A, p.B, p.Score})
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	best := map[string]float32{}
	for _, p := range pairs {
		best[p.A] = max(best[p.A], p.Score)
		best[p.B] = max(best[p.B], p.Score)
	}
	for i, g := range groups {
		fmt.Fprintf(stdout, "group %d (%d photos)\n", i+1, len(g))
		for _, p := range g {
			fmt.Fprintf(stdout, "  %.4f  %s\n", best[p], p)
		}
	}
	fmt.Fprintf(stderr, "goclip dupes: %d groups, %d pairs with cosine ≥ %g\n", len(groups), len(pairs), *threshold)
	return nil
}

// serveStore is what goclip serve searches.
type serveStore struct {
	searcher server.Searcher      // nil: no photos of the model (videos only)
	videos   server.VideoSearcher // nil: no video moments, noVideos says why
	noVideos string
	close    func() error
}

// openServeStore opens the store of spec (a backend URL or an embedded
// index path) for goclip serve. Photos are searched through the backend
// interface on every backend; video moments come from the embedded
// store only (read-only, with its search graph built in the background
// when missing or stale).
func openServeStore(ctx context.Context, spec string, m *clip.Model, logf func(string, ...any)) (*serveStore, error) {
	if backend.IsURL(spec) {
		b, id, err := openURLBackend(ctx, spec, m)
		if err != nil {
			return nil, err
		}
		return &serveStore{
			searcher: &server.BackendSearcher{Backend: b, ModelID: id},
			noVideos: fmt.Sprintf("the store %s holds no videos (video moments are kept only in the embedded store: goclip video index, then goclip serve --db PATH)", backend.Describe(b)),
			close:    b.Close,
		}, nil
	}
	path, err := dbPath(spec)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(path, &store.Options{ReadOnly: true, BuildInBackground: true})
	if err != nil {
		return nil, err
	}
	id, err := indexer.ModelID(st, m)
	if err != nil {
		st.Close()
		return nil, err
	}
	ss := &serveStore{close: st.Close}
	b := &backend.Embedded{St: st}
	if err := b.CheckModel(ctx, id, m.EmbedDim()); err != nil { // names the models the file holds
		// A database holding only videos of this model still serves them.
		if _, verr := st.VideoGeneration(id); !errors.Is(err, store.ErrNoModel) || verr != nil {
			st.Close()
			return nil, err
		}
	} else {
		ss.searcher = &server.BackendSearcher{Backend: b, ModelID: id}
	}
	if tools, err := video.FindTools(); err != nil {
		logf("video search is off: %v", err)
	} else {
		ss.videos = storeVideos{video.NewLibrary(st, id, &tools)}
	}
	return ss, nil
}
