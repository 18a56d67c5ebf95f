package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/fixtures"
)

// TestIndexStorePath checks that `index --store PATH` writes the embedded
// index at PATH (as --db does) and that search --store PATH reads it, and
// that --db and --store naming different stores is a usage error.
func TestIndexStorePath(t *testing.T) {
	fix, models := fixtureModels(t)
	tok := filepath.Join(fix, "tokenizer")
	photos := t.TempDir()
	im := fixtures.ReadManifest(t, fix).Images[0]
	data, err := os.ReadFile(filepath.Join(fix, im.File))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(photos, filepath.Base(im.File)), data, 0o644)
	db := filepath.Join(t.TempDir(), "by-store.db")
	t.Setenv("GOCLIP_DB", filepath.Join(t.TempDir(), "default.db"))
	base := []string{"--model", models[0], "--tokenizer", tok}

	_, stderr, rc := goclip(t, append(append([]string{"index"}, base...), "--quiet", "--store", db, photos)...)
	if rc != 0 {
		t.Fatalf("index --store %s: rc=%d: %s", db, rc, stderr)
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("index --store did not write %s: %v", db, err)
	}
	if _, err := os.Stat(os.Getenv("GOCLIP_DB")); err == nil {
		t.Fatalf("index --store %s wrote the default index instead", db)
	}
	stdout, stderr, rc := goclip(t, append(append([]string{"search"}, base...), "--store", db, "--json", "a photo")...)
	if rc != 0 || !strings.Contains(stdout, filepath.Base(im.File)) {
		t.Fatalf("search --store %s: rc=%d stdout=%s stderr=%s", db, rc, stdout, stderr)
	}
	_, stderr, rc = goclip(t, append(append([]string{"index"}, base...), "--store", db, "--db", db+".other", photos)...)
	if rc != 2 || !strings.Contains(stderr, "not both") {
		t.Fatalf("index with different --db and --store: rc=%d: %s", rc, stderr)
	}
}
