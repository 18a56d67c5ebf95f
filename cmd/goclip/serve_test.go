package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goclip/goclip/internal/fixtures"
)

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeCommand indexes the fixture images with goclip index, serves
// the index with goclip serve --db on 127.0.0.1:0 and queries it.
func TestServeCommand(t *testing.T) {
	dir := fixtures.Dir(t)
	var model string
	for _, md := range fixtures.ReadManifest(t, dir).Models {
		if slices.Contains(md.Files, "open_clip_model.safetensors") {
			model = filepath.Join(dir, md.Name, "open_clip_model.safetensors")
			break
		}
	}
	if model == "" {
		t.Skip("no open_clip safetensors model in the fixtures")
	}
	tok := filepath.Join(dir, "tokenizer")
	photos := t.TempDir()
	for _, im := range fixtures.ReadManifest(t, dir).Images {
		data, err := os.ReadFile(filepath.Join(dir, im.File))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(photos, filepath.Base(im.File)), data, 0o644)
	}
	db := filepath.Join(t.TempDir(), "index.db")
	var ierr bytes.Buffer
	if rc := Main(context.Background(), []string{"index", "--model", model, "--tokenizer", tok, "--db", db, "--quiet", photos}, io.Discard, &ierr); rc != 0 {
		t.Fatalf("goclip index: %d %s", rc, ierr.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- Main(ctx, []string{"serve", "--model", model, "--tokenizer", tok, "--db", db,
			"--addr", "127.0.0.1:0", "--max-wait", "2ms"}, &stdout, &stderr)
	}()
	addrRE := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	var base string
	deadline := time.Now().Add(30 * time.Second)
	for base == "" {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
			break
		}
		select {
		case code := <-exit:
			t.Fatalf("goclip serve exited with %d: %s", code, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("goclip serve did not start: %s", stderr.String())
		}
	}
	res, err := http.Post(base+"/v1/embed", "application/json", strings.NewReader(`{"texts":["a photo of a cat"]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var got struct {
		TextEmbeddings [][]float32 `json:"text_embeddings"`
	}
	if res.StatusCode != 200 || json.Unmarshal(body, &got) != nil || len(got.TextEmbeddings) != 1 {
		t.Fatalf("POST /v1/embed: %d %s", res.StatusCode, body)
	}
	res, err = http.Post(base+"/v1/search", "application/json", strings.NewReader(`{"text":"a red square","top":3}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	var hits struct {
		Results []struct {
			Path  string  `json:"path"`
			Score float32 `json:"score"`
		} `json:"results"`
	}
	if res.StatusCode != 200 || json.Unmarshal(body, &hits) != nil || len(hits.Results) != 3 {
		t.Fatalf("POST /v1/search: %d %s", res.StatusCode, body)
	}
	res, err = http.Get(base + "/v1/thumb?path=" + url.QueryEscape(hits.Results[0].Path))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/jpeg" {
		t.Errorf("thumbnail of %s: %d %.100s", hits.Results[0].Path, res.StatusCode, body)
	}
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("goclip serve exited with %d after shutdown: %s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("goclip serve did not stop after its context ended")
	}
}

func TestServeUsage(t *testing.T) {
	t.Setenv("GOCLIP_MODEL", "")
	for _, args := range [][]string{
		{"serve", "--max-batch", "0", "--model", "x"},
		{"serve", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("goclip %v: exit %d (%s), want 2", args, code, stderr.String())
		}
	}
}
