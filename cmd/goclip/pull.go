package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/goclip/goclip/internal/hub"
)

func init() {
	register("pull", "download a model from the Hugging Face hub into the cache", runPull)
	register("models", "list the models in the cache", runModels)
}

func runPull(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("pull", stderr)
	rev := fs.String("revision", hub.DefaultRevision, "branch, tag or commit")
	quiet := fs.Bool("quiet", false, "no progress output")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("give one model name: a hub repo id (openai/clip-vit-base-patch32) or an alias (%s)", aliasList())
	}
	c := hub.NewClient()
	c.Warn = func(msg string) { fmt.Fprintln(stderr, "goclip pull:", msg) }
	if !*quiet {
		var mu sync.Mutex
		last := map[string]time.Time{}
		c.Progress = func(file string, done, total int64) {
			mu.Lock()
			defer mu.Unlock()
			if done < total && time.Since(last[file]) < 500*time.Millisecond {
				return
			}
			last[file] = time.Now()
			if total > 0 {
				fmt.Fprintf(stderr, "\r%-40s %6.1f / %.1f MB", file, float64(done)/1e6, float64(total)/1e6)
			}
			if done >= total {
				fmt.Fprintln(stderr)
			}
		}
	}
	dir, err := c.Pull(ctx, fs.Arg(0), *rev)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, dir)
	return nil
}

func aliasList() string {
	s := ""
	for a := range hub.Aliases {
		if s != "" {
			s += ", "
		}
		s += a
	}
	return s
}

func runModels(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("models", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	list, err := hub.NewClient().List()
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(stderr, "no models cached; `goclip pull ViT-B-32` fetches one")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPO\tALIAS\tCOMMIT\tSIZE\tCOMPLETE\tPATH")
	for _, m := range list {
		commit := m.Commit
		if len(commit) > 12 {
			commit = commit[:12]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f MB\t%v\t%s\n", m.Repo, hub.AliasOf(m.Repo), commit, float64(m.Size)/1e6, m.Complete, m.Path)
	}
	return tw.Flush()
}
