//go:build !386 && !arm && !mips && !mipsle

package weaviate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests that need a real Weaviate run whenever a weaviate-server
// binary is found (see findWeaviate) and are skipped, saying why,
// otherwise; GOCLIP_WEAVIATE=0 skips them on purpose. When a binary is
// found, TestMain re-runs the test binary inside a fresh network
// namespace (Linux: the nodes' gRPC, internal data and profiling
// listeners bind every interface, which must not be exposed), where
// only the loopback interface exists.

const weaviateVersion = "v1.35.2"

// findWeaviate returns the weaviate-server to test against and "", or ""
// and why there is none.
func findWeaviate() (bin, why string) {
	if os.Getenv("GOCLIP_WEAVIATE") == "0" {
		return "", "GOCLIP_WEAVIATE=0 skips the tests that start Weaviate"
	}
	if p := os.Getenv("GOCLIP_WEAVIATE_BIN"); p != "" {
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Sprintf("GOCLIP_WEAVIATE_BIN=%s is not an executable file", p)
		}
		return p, ""
	}
	home, _ := os.UserHomeDir()
	cache := os.Getenv("GOCLIP_WEAVIATE_CACHE")
	if cache == "" {
		cache = filepath.Join(home, ".cache/goclip/weaviate")
	}
	cands := []string{filepath.Join(cache, weaviateVersion, "weaviate-server"), filepath.Join(cache, "bin/weaviate-server")}
	for _, p := range cands {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, ""
		}
	}
	return "", fmt.Sprintf("no weaviate-server binary (looked at $GOCLIP_WEAVIATE_BIN, %s): build it once with scripts/weaviate/build.sh (go install github.com/weaviate/weaviate/cmd/weaviate-server@%s, ~20 min cold on 2 cores)", strings.Join(cands, ", "), weaviateVersion)
}

// weaviateBin returns the binary or skips the test with the reason.
func weaviateBin(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("-short: this test starts Weaviate nodes")
	}
	bin, why := findWeaviate()
	if bin == "" {
		tb.Skip(why)
	}
	if os.Getenv(netnsEnv) == "" && !noNetns {
		tb.Log("WARNING: not in a network namespace; the Weaviate nodes' gRPC and internal ports bind every interface during this test")
	}
	return bin
}

// netnsEnv marks the re-executed test binary running in its own network
// namespace.
const netnsEnv = "GOCLIP_WEAVIATE_NETNS"

// noNetns is set when no namespace could be made (the warning is logged).
var noNetns bool

func TestMain(m *testing.M) {
	if os.Getenv(netnsEnv) == "1" {
		if err := loopbackUp(); err != nil {
			fmt.Fprintf(os.Stderr, "weaviate tests: in the new network namespace, bringing lo up: %v\n", err)
			os.Exit(1)
		}
	} else if bin, _ := findWeaviate(); bin != "" && !shortFlag() {
		code, err := runInNetns()
		if err == nil {
			os.Exit(code)
		}
		fmt.Fprintf(os.Stderr, "weaviate tests: WARNING: no network namespace (%v); Weaviate nodes will bind every interface while the tests run\n", err)
		noNetns = true
	}
	os.Exit(m.Run())
}

func shortFlag() bool {
	for _, a := range os.Args[1:] {
		if a == "-test.short" || a == "-test.short=true" {
			return true
		}
	}
	return false
}

// node is one weaviate-server process.
type node struct {
	name       string
	cmd        *exec.Cmd
	http, grpc int
	log        string
	done       chan struct{} // closed when the process has exited
	mu         sync.Mutex
	exited     bool
}

// portPair returns a free port p on 127.0.0.1 whose successor is free
// too: Weaviate on localhost derives the raft RPC port (raft+1) and the
// data port (gossip+1).
func portPair(tb testing.TB, taken map[int]bool) int {
	tb.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		l.Close()
		if err != nil || taken[p] || taken[p+1] {
			continue
		}
		l2.Close()
		taken[p], taken[p+1] = true, true
		return p
	}
	tb.Fatal("no two consecutive free ports on 127.0.0.1")
	return 0
}

func freePort(tb testing.TB, taken map[int]bool) int {
	tb.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !taken[p] {
			taken[p] = true
			return p
		}
	}
	tb.Fatal("no free port on 127.0.0.1")
	return 0
}

// startCluster starts n Weaviate nodes on 127.0.0.1: node 0 first, the
// others once its gossip port answers; it returns when every node is
// ready. extraEnv is added to every node's environment. Each node is
// stopped by its PID (SIGTERM, then SIGKILL) at the end of the test.
func startCluster(tb testing.TB, n int, extraEnv ...string) []*node {
	tb.Helper()
	bin := weaviateBin(tb)
	taken := map[int]bool{}
	type ports struct{ http, grpc, gossip, raft, prof int }
	ps := make([]ports, n)
	for i := range ps {
		ps[i] = ports{freePort(tb, taken), freePort(tb, taken), portPair(tb, taken), portPair(tb, taken), freePort(tb, taken)}
	}
	var join []string
	for i := range ps {
		join = append(join, fmt.Sprintf("node%d:%d", i, ps[i].raft))
	}
	dir := tb.TempDir()
	var nodes []*node
	for i, p := range ps {
		env := []string{
			"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
			"CLUSTER_IN_LOCALHOST=true", fmt.Sprintf("CLUSTER_HOSTNAME=node%d", i),
			"CLUSTER_BIND_ADDR=127.0.0.1", "CLUSTER_ADVERTISE_ADDR=127.0.0.1",
			fmt.Sprintf("CLUSTER_GOSSIP_BIND_PORT=%d", p.gossip), fmt.Sprintf("CLUSTER_DATA_BIND_PORT=%d", p.gossip+1),
			fmt.Sprintf("RAFT_PORT=%d", p.raft), fmt.Sprintf("RAFT_INTERNAL_RPC_PORT=%d", p.raft+1),
			"RAFT_JOIN=" + strings.Join(join, ","), fmt.Sprintf("RAFT_BOOTSTRAP_EXPECT=%d", n),
			"PERSISTENCE_DATA_PATH=" + filepath.Join(dir, fmt.Sprint(i)),
			"AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED=true", "DEFAULT_VECTORIZER_MODULE=none",
			fmt.Sprintf("GRPC_PORT=%d", p.grpc), fmt.Sprintf("GO_PROFILING_PORT=%d", p.prof),
			"DISABLE_TELEMETRY=true", "LOG_LEVEL=warning", "QUERY_DEFAULTS_LIMIT=25",
			// Notice a killed node within seconds, not minutes.
			"MEMBERLIST_FAST_FAILURE_DETECTION=true",
		}
		env = append(env, extraEnv...)
		if i > 0 {
			env = append(env, fmt.Sprintf("CLUSTER_JOIN=127.0.0.1:%d", ps[0].gossip))
		}
		nd := startNode(tb, bin, fmt.Sprintf("node%d", i), p.http, p.grpc, env, filepath.Join(dir, fmt.Sprintf("node%d.log", i)))
		nodes = append(nodes, nd)
		if i == 0 {
			waitPort(tb, ps[0].gossip, 60*time.Second)
		}
	}
	for _, nd := range nodes {
		nd.waitReady(tb, 3*time.Minute)
	}
	return nodes
}

func startNode(tb testing.TB, bin, name string, httpPort, grpcPort int, env []string, logPath string) *node {
	tb.Helper()
	lf, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "--host", "127.0.0.1", "--port", fmt.Sprint(httpPort), "--scheme", "http")
	cmd.Env, cmd.Stdout, cmd.Stderr = env, lf, lf
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		lf.Close()
		tb.Fatalf("starting %s: %v", bin, err)
	}
	nd := &node{name: name, cmd: cmd, http: httpPort, grpc: grpcPort, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		lf.Close()
		close(nd.done)
	}()
	tb.Cleanup(func() { nd.stop(tb) })
	return nd
}

// stop ends the node by its PID: SIGTERM, SIGKILL after 5 s.
func (nd *node) stop(tb testing.TB) {
	select {
	case <-nd.done:
		return
	default:
	}
	_ = nd.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-nd.done:
	case <-time.After(5 * time.Second):
		tb.Logf("%s (pid %d) still running 5s after SIGTERM: SIGKILL", nd.name, nd.cmd.Process.Pid)
		_ = nd.cmd.Process.Kill()
		<-nd.done
	}
}

// kill ends the node at once (SIGKILL), as a crashed machine would.
func (nd *node) kill() {
	_ = nd.cmd.Process.Kill()
	<-nd.done
}

func (nd *node) waitReady(tb testing.TB, d time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(d)
	cl := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/.well-known/ready", nd.http))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-nd.done:
			tb.Fatalf("weaviate %s exited before it was ready; log tail:\n%s", nd.name, nd.logTail())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("weaviate %s not ready after %v; log tail:\n%s", nd.name, d, nd.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (nd *node) logTail() string {
	data, _ := os.ReadFile(nd.log)
	return tail(string(data), 3000)
}

func tail(s string, n int) string { return s[max(0, len(s)-n):] }

func waitPort(tb testing.TB, port int, d time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("port %d did not open in %v", port, d)
}

func (nd *node) url(class string, extra string) string {
	return fmt.Sprintf("weaviate://127.0.0.1:%d/%s?grpc=%d%s", nd.http, class, nd.grpc, extra)
}

// openStore opens the backend on nd (no retries wasted on a test bug).
func openStore(tb testing.TB, ctx context.Context, nd *node, class, extra string) *Store {
	tb.Helper()
	c, err := ParseURL(nd.url(class, extra))
	if err != nil {
		tb.Fatal(err)
	}
	s, err := Open(ctx, c)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

var errNoNetns = errors.New("network namespaces are Linux-only")
