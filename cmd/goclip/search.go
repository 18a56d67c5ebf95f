package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/indexer"
	"github.com/goclip/goclip/internal/server"
	"github.com/goclip/goclip/internal/store"
)

func init() {
	register("search", `search indexed photos by text, image or a combination ("beach" + 2*"sunset" - "people")`, runSearch)
	register("dupes", "report near-duplicate indexed photos (cosine above a threshold)", runDupes)
	openStore = openServerStore
}

func runSearch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("search", stderr)
	var mf modelFlags
	mf.register(fs)
	var db string
	dbFlag(fs, &db)
	var images stringList
	fs.Var(&images, "image", "image file to search with (repeatable; added to the text terms with weight 1)")
	top := fs.Int("top", 10, "number of results")
	asJSON := fs.Bool("json", false, `write one JSON array [{"path":…,"score":…},…], best first`)
	open := fs.Bool("open", false, "open the best match with the system viewer")
	exact := fs.Bool("exact", false, "brute-force search even above the approximate-search threshold")
	if err := parse(fs, args); err != nil {
		return err
	}
	qtext := strings.TrimSpace(strings.Join(fs.Args(), " "))
	if qtext == "" && len(images) == 0 {
		return usagef(`give a query text (e.g. "a dog on the beach") or --image FILE`)
	}
	if *top < 1 {
		return usagef("--top must be at least 1")
	}
	var terms []indexer.Term
	if qtext != "" {
		var err error
		if terms, err = indexer.ParseQuery(qtext); err != nil {
			return usagef("%v", err)
		}
	}
	m, st, id, err := loadForStore(&mf, db)
	if err != nil {
		return err
	}
	defer st.Close()
	q, err := indexer.EmbedQuery(ctx, m, terms, images)
	if err != nil {
		return err
	}
	search := st.Search
	if *exact {
		search = st.Exact
	}
	res, err := search(ctx, id, q, *top)
	if err != nil {
		return err
	}
	if *asJSON {
		if res == nil {
			res = []store.Result{}
		}
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "score\tpath")
		for _, r := range res {
			fmt.Fprintf(tw, "%.4f\t%s\n", r.Score, r.Path)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if *open && len(res) > 0 {
		return openFile(res[0].Path)
	}
	return nil
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

// storeSearcher adapts the store to the HTTP server's Searcher and
// FileOpener.
type storeSearcher struct {
	st     *store.Store
	id     string
	photos bool // the store holds photo embeddings of this model
}

func (s storeSearcher) Search(ctx context.Context, q []float32, k int) ([]server.Hit, error) {
	res, err := s.st.Search(ctx, s.id, q, k)
	if err != nil {
		return nil, err
	}
	out := make([]server.Hit, len(res))
	for i, r := range res {
		out[i] = server.Hit{Path: r.Path, Score: r.Score}
	}
	return out, nil
}

// OpenFile opens path only if it is indexed under the model.
func (s storeSearcher) OpenFile(ctx context.Context, path string) (io.ReadCloser, error) {
	clean := filepath.Clean(path)
	r, ok, err := s.st.Get(s.id, clean)
	if err != nil {
		return nil, err
	}
	if !ok || r.Failed() {
		return nil, fmt.Errorf("%s: %w", path, os.ErrNotExist)
	}
	return os.Open(clean)
}

// openServerStore opens the index for goclip serve: read-only, with the
// search graph built in the background when it is missing or stale.
func openServerStore(path string, m *clip.Model) (server.Searcher, io.Closer, error) {
	st, err := store.Open(path, &store.Options{ReadOnly: true, BuildInBackground: true})
	if err != nil {
		return nil, nil, err
	}
	id, err := indexer.ModelID(st, m)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	photos := true
	if _, err := st.Count(id); err != nil { // names the models the file holds
		// A database holding only videos of this model still serves them.
		if _, verr := st.VideoGeneration(id); !errors.Is(err, store.ErrNoModel) || verr != nil {
			st.Close()
			return nil, nil, err
		}
		photos = false
	}
	return storeSearcher{st, id, photos}, st, nil
}
