//go:build !386 && !arm && !mips && !mipsle

package weaviate

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goclip/goclip/internal/backend"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		want Config
	}{
		{"weaviate://127.0.0.1:8080/Images?grpc=50051", true, Config{Host: "127.0.0.1:8080", GRPCHost: "127.0.0.1:50051", Class: "Images", Replication: 1, Consistency: "QUORUM", Retries: 5, Backoff: 500 * time.Millisecond, Timeout: 30 * time.Second}},
		{"weaviate://h:1/My_Class2?grpc=h2:9&replication=2&consistency=one&ef=128&maxConnections=32&efConstruction=256&retries=0&backoff=1s&timeout=5s", true, Config{Host: "h:1", GRPCHost: "h2:9", Class: "My_Class2", Replication: 2, Consistency: "ONE", Ef: 128, EfConstruction: 256, MaxConnections: 32, Retries: 0, Backoff: time.Second, Timeout: 5 * time.Second}},
		{"weaviate://127.0.0.1:8080/Images?grpc=1&timeout=1ms", false, Config{}},
		{"weaviate://127.0.0.1:8080/images?grpc=1", false, Config{}},
		{"weaviate://127.0.0.1:8080/?grpc=1", false, Config{}},
		{"weaviate://127.0.0.1:8080/Images", false, Config{}},
		{"weaviate://127.0.0.1/Images?grpc=1", false, Config{}},
		{"weaviate://127.0.0.1:8080/Images?grpc=1&replication=0", false, Config{}},
		{"weaviate://127.0.0.1:8080/Images?grpc=1&consistency=SOME", false, Config{}},
		{"weaviate://127.0.0.1:8080/Images?grpc=1&x=1", false, Config{}},
		{"http://127.0.0.1:8080/Images?grpc=1", false, Config{}},
	} {
		got, err := ParseURL(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseURL(%q): err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && *got != tc.want {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tc.in, *got, tc.want)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"weaviate://127.0.0.1:8080/Images?grpc=50051", "weaviate://h:1/C?grpc=h:2&replication=2", "weaviate://:1/C?grpc=1", "weaviate://h:1/C?grpc=1&backoff=-1s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseURL(s)
		if err != nil {
			return
		}
		if c.Class == "" || c.GRPCHost == "" || c.Replication < 1 || c.Backoff <= 0 {
			t.Fatalf("ParseURL(%q) accepted %+v", s, c)
		}
	})
}

func TestObjectID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := ObjectID("m", "/x/a.jpg"), ObjectID("m", "/x/b.jpg")
	if !re.MatchString(a) || a == b || a != ObjectID("m", "/x/a.jpg") || a == ObjectID("m2", "/x/a.jpg") {
		t.Fatalf("ObjectID: %s %s", a, b)
	}
}

// TestUnreachable: a Weaviate that does not answer is retried with
// backoff, then reported naming the address.
func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := ParseURL(fmt.Sprintf("weaviate://%s/Images?grpc=1&retries=2&backoff=50ms", addr))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Open(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "after 2 retries") {
		t.Fatalf("Open on a closed port: %v", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 20*time.Second {
		t.Fatalf("Open took %v; want two backoffs (50ms+100ms) and no hang", d)
	}
	// Through the registry too.
	if _, err := backend.Open(context.Background(), "weaviate://"+addr+"/Images?grpc=1&retries=0"); err == nil {
		t.Fatal("backend.Open on a closed port succeeded")
	}
	if _, err := backend.Open(context.Background(), "nope://x:1/Y"); err == nil || !strings.Contains(err.Error(), "weaviate") {
		t.Fatalf("unknown scheme: %v", err)
	}
}
