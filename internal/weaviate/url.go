//go:build !386 && !arm && !mips && !mipsle

package weaviate

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is a parsed weaviate:// store URL:
//
//	weaviate://host:httpPort/ClassName?grpc=grpcPort[&replication=N][&consistency=QUORUM]
//	         [&ef=N][&efConstruction=N][&maxConnections=N][&retries=N][&backoff=500ms][&timeout=30s]
type Config struct {
	Host        string // host:port of the REST API
	GRPCHost    string // host:port of the gRPC API
	Class       string
	Replication int    // replication factor of a class goclip creates (default 1)
	Consistency string // ONE, QUORUM (default) or ALL
	// HNSW settings of a class goclip creates (0: Weaviate's defaults).
	Ef, EfConstruction, MaxConnections int
	// Retries is how many times an unreachable or overloaded Weaviate is
	// retried (default 5), waiting Backoff (default 500ms), doubling.
	Retries int
	Backoff time.Duration
	// Timeout bounds each request (default 30s); a request cut short is
	// retried like an unreachable Weaviate.
	Timeout time.Duration
}

// ParseURL parses a weaviate:// store URL.
func ParseURL(s string) (*Config, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("weaviate: store URL %q: %w", s, err)
	}
	return FromURL(u)
}

// FromURL is ParseURL on a parsed URL.
func FromURL(u *url.URL) (*Config, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("weaviate: store URL %q: %s (want weaviate://host:httpPort/ClassName?grpc=grpcPort)", u.Redacted(), fmt.Sprintf(format, a...))
	}
	if u.Scheme != "weaviate" {
		return nil, bad("scheme %q is not weaviate", u.Scheme)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return nil, bad("no host:port")
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return nil, bad("bad port %q", port)
	}
	c := &Config{Host: u.Host, Consistency: "QUORUM", Replication: 1, Retries: 5, Backoff: 500 * time.Millisecond, Timeout: 30 * time.Second}
	c.Class = strings.Trim(u.Path, "/")
	if err := checkClass(c.Class); err != nil {
		return nil, bad("%v", err)
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "grpc", "replication", "consistency", "ef", "efConstruction", "maxConnections", "retries", "backoff", "timeout":
		default:
			return nil, bad("unknown parameter %q", k)
		}
	}
	g := q.Get("grpc")
	if g == "" {
		return nil, bad("no grpc port")
	}
	if p, err := strconv.Atoi(g); err == nil && p > 0 && p <= 65535 {
		c.GRPCHost = net.JoinHostPort(host, g)
	} else if _, _, err := net.SplitHostPort(g); err == nil {
		c.GRPCHost = g
	} else {
		return nil, bad("bad grpc port %q", g)
	}
	ints := []struct {
		name string
		p    *int
		min  int
	}{{"replication", &c.Replication, 1}, {"ef", &c.Ef, 1}, {"efConstruction", &c.EfConstruction, 1}, {"maxConnections", &c.MaxConnections, 2}, {"retries", &c.Retries, 0}}
	for _, f := range ints {
		v := q.Get(f.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < f.min || n > 1<<20 {
			return nil, bad("%s=%q is not an integer ≥ %d", f.name, v, f.min)
		}
		*f.p = n
	}
	if v := q.Get("consistency"); v != "" {
		v = strings.ToUpper(v)
		if v != "ONE" && v != "QUORUM" && v != "ALL" {
			return nil, bad("consistency=%q is not ONE, QUORUM or ALL", v)
		}
		c.Consistency = v
	}
	if v := q.Get("backoff"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > time.Minute {
			return nil, bad("backoff=%q is not a duration in (0, 1m]", v)
		}
		c.Backoff = d
	}
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 100*time.Millisecond || d > time.Hour {
			return nil, bad("timeout=%q is not a duration in [100ms, 1h]", v)
		}
		c.Timeout = d
	}
	return c, nil
}

// checkClass enforces Weaviate's class-name rule: an upper-case ASCII
// letter, then letters, digits and underscores.
func checkClass(s string) error {
	if s == "" {
		return fmt.Errorf("no class name in the path")
	}
	if len(s) > 200 {
		return fmt.Errorf("class name of %d bytes", len(s))
	}
	for i, r := range s {
		ok := r >= 'A' && r <= 'Z' || i > 0 && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
		if !ok {
			return fmt.Errorf("class name %q must start with an upper-case letter and hold only letters, digits and _", s)
		}
	}
	return nil
}
