package queue

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// natsCluster starts n embedded JetStream servers on 127.0.0.1, clustered
// when n > 1, and returns them with the --queue URL listing all of them.
// They are shut down at the end of the test.
func natsCluster(t testing.TB, n int) ([]*server.Server, string) {
	t.Helper()
	ports := freePorts(t, 2*n)
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
			JetStream: true, StoreDir: t.TempDir(),
			NoSigs: true, NoLog: true,
		}
		if n > 1 {
			o.Cluster = server.ClusterOpts{Name: "goclip-test", Host: "127.0.0.1", Port: ports[n+i]}
			o.Routes = routes
		}
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		t.Cleanup(s.Shutdown)
		srvs = append(srvs, s)
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", ports[i]))
	}
	for _, s := range srvs {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("nats server %s not ready", s.Name())
		}
	}
	// Wait (bounded) for the JetStream meta leader.
	deadline := time.Now().Add(20 * time.Second)
	for n > 1 && time.Now().Before(deadline) {
		ok := false
		for _, s := range srvs {
			if s.JetStreamIsLeader() {
				ok = true
			}
		}
		if ok {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return srvs, "nats://" + strings.Join(addrs, ",")
}
