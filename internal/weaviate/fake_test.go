//go:build !386 && !arm && !mips && !mipsle

package weaviate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goclip/goclip/internal/backend"
)

// fakeWeaviate answers the REST calls EnsureModel makes: readiness, one
// class, and its first object (with a vector of objDim dimensions).
func fakeWeaviate(t *testing.T, l net.Listener, class map[string]any, objDim int) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/.well-known/ready", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /v1/meta", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"version": "1.35.2"})
	})
	mux.HandleFunc("GET /v1/schema/{class}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("class") != class["class"] {
			http.Error(w, `{"error":[{"message":"not found"}]}`, 404)
			return
		}
		json.NewEncoder(w).Encode(class)
	})
	mux.HandleFunc("GET /v1/objects", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"objects": []any{map[string]any{
			"class": class["class"], "id": "00000000-0000-5000-8000-000000000000",
			"properties": map[string]any{}, "vector": make([]float32, objDim),
		}}})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// TestDimensionRefused: a class holding vectors of another dimension is
// refused naming both, whether goclip made it (its description) or not
// (a stored vector).
func TestDimensionRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		class map[string]any
	}{
		{"goclip class", map[string]any{"class": "Images", "description": `goclip {"model":"m","dim":512}`}},
		{"foreign class", map[string]any{"class": "Images", "description": "someone else's"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			fakeWeaviate(t, l, tc.class, 512)
			ctx := context.Background()
			s, err := backend.Open(ctx, fmt.Sprintf("weaviate://%s/Images?grpc=1&retries=0", l.Addr()))
			if err != nil {
				t.Fatal(err)
			}
			err = s.EnsureModel(ctx, "m", 64, "test")
			if !errors.Is(err, backend.ErrDimension) || !strings.Contains(err.Error(), "512-d") || !strings.Contains(err.Error(), "64-d") {
				t.Fatalf("EnsureModel(64-d) on a 512-d class: %v; want ErrDimension naming 512-d and 64-d", err)
			}
			if err := s.EnsureModel(ctx, "m", 512, "test"); err != nil {
				t.Fatalf("EnsureModel(512-d) on a 512-d class: %v", err)
			}
		})
	}
}

// TestOpenWaitsForWeaviate: a Weaviate that comes up while Open retries
// (exponential backoff) is used; nothing is lost by starting early.
func TestOpenWaitsForWeaviate(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // down for now
	var up atomic.Bool
	go func() {
		time.Sleep(400 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		fakeWeaviate(t, l, map[string]any{"class": "Images", "description": `goclip {"model":"m","dim":64}`}, 64)
		up.Store(true)
	}()
	c, err := ParseURL(fmt.Sprintf("weaviate://%s/Images?grpc=1&retries=6&backoff=50ms", addr))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, err := Open(context.Background(), c)
	if err != nil {
		t.Fatalf("Open while Weaviate starts: %v", err)
	}
	if !up.Load() || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("Open returned after %v before the server was up", time.Since(start))
	}
	if err := s.EnsureModel(context.Background(), "m", 64, "test"); err != nil {
		t.Fatal(err)
	}
}
