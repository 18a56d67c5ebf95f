// Package queuetest starts embedded NATS JetStream servers for tests of
// distributed indexing (package queue and the Weaviate cluster tests).
package queuetest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// FreePorts returns n distinct free TCP ports on 127.0.0.1.
func FreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// NATSCluster starts n embedded JetStream servers on 127.0.0.1, clustered
// when n > 1, and returns them with the --queue URL listing all of them
// (without options). They are shut down at the end of the test; it fails
// the test if they are not ready (or have no JetStream meta leader) within
// 20 seconds.
func NATSCluster(tb testing.TB, n int) ([]*server.Server, string) {
	tb.Helper()
	ports := FreePorts(tb, 2*n)
	var routes []*url.URL
	for i := range n {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", ports[n+i])})
	}
	var srvs []*server.Server
	var addrs []string
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       "127.0.0.1", Port: ports[i],
			JetStream: true, StoreDir: tb.TempDir(),
			NoSigs: true, NoLog: true,
		}
		if n > 1 {
			o.Cluster = server.ClusterOpts{Name: "goclip-test", Host: "127.0.0.1", Port: ports[n+i]}
			o.Routes = routes
		}
		s, err := server.NewServer(o)
		if err != nil {
			tb.Fatal(err)
		}
		go s.Start()
		tb.Cleanup(s.Shutdown)
		srvs = append(srvs, s)
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", ports[i]))
	}
	for _, s := range srvs {
		if !s.ReadyForConnections(10 * time.Second) {
			tb.Fatalf("nats server %s not ready", s.Name())
		}
	}
	if n > 1 {
		deadline := time.Now().Add(20 * time.Second)
		for !hasLeader(srvs) {
			if time.Now().After(deadline) {
				tb.Fatalf("no JetStream meta leader among %d nats servers after 20s", n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return srvs, "nats://" + strings.Join(addrs, ",")
}

func hasLeader(srvs []*server.Server) bool {
	for _, s := range srvs {
		if s.JetStreamIsLeader() {
			return true
		}
	}
	return false
}
