package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/client"
)

// raiseFileLimit lifts the test process's open-file limit to what it needs
// (as far as the hard limit goes, or further as root) and skips the test
// when that is not enough.
func raiseFileLimit(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= need {
		return
	}
	if need > lim.Max {
		// Only a process with CAP_SYS_RESOURCE may raise the hard limit.
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: need, Max: need}); err == nil {
			return
		}
		t.Skipf("this test opens %d files; RLIMIT_NOFILE's hard limit is %d and may not be raised here", need, lim.Max)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: need, Max: lim.Max}); err != nil {
		t.Fatalf("raising RLIMIT_NOFILE to %d: %v", need, err)
	}
}

// testConns is how many hostile connections TestSlowClients opens:
// LF_SLOW_CONNS, or 2,000.
func testConns(t *testing.T) int {
	if s := os.Getenv("LF_SLOW_CONNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 20 {
			t.Fatalf("LF_SLOW_CONNS=%q: want a number ≥ 20", s)
		}
		return n
	}
	return 2000
}

// TestSlowClients floods the real binary with hostile connections past
// http.max_connections: bodies announced at 16 MiB that trickle, headers
// that never end (slowloris) and idle keep-alive connections. The process
// stays within its connection cap and a memory bound, a probe and a normal
// client are served, and everything recovers when the flood goes.
func TestSlowClients(t *testing.T) {
	total := testConns(t)
	capacity := total / 2
	raiseFileLimit(t, uint64(total+1000))
	s := startServer(t, "testdata/slow.yaml", t.TempDir(), "LF_MAX_CONNS="+strconv.Itoa(capacity))

	// One keep-alive connection for the test's own requests; closed
	// before the flood so that the flood's arithmetic is exact.
	tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	c := client.New(s.addr, "", &http.Client{Transport: tr, Timeout: 30 * time.Second})
	metric := func(series string) float64 {
		t.Helper()
		body, err := c.Metrics(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return seriesValue(t, body, series)
	}
	const (
		open     = `lambdaflow_http_open_connections{component="http",pipeline="slow"}`
		refused  = `lambdaflow_http_refused_connections_total{component="http",pipeline="slow"}`
		shedIdle = `lambdaflow_http_shed_connections_total{component="http",pipeline="slow",state="idle"}`
		heap     = `go_memstats_heap_inuse_bytes`
		rss      = `process_resident_memory_bytes`
	)
	heap0 := metric(heap)
	tr.CloseIdleConnections()
	waitFor(t, "the test's connection to close", func() error {
		if n := openConns(t, s); n != 1 { // the scrape itself
			return fmt.Errorf("%d open connections", n)
		}
		return nil
	})

	// The flood, in this order: slow bodies (a tenth), slowloris headers
	// (half), idle keep-alive connections (the rest).
	var conns []net.Conn
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	dial := func() net.Conn {
		cn, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatalf("after %d connections: %v", len(conns), err)
		}
		conns = append(conns, cn)
		return cn
	}
	bodies, loris := total/10, total/2
	for range bodies {
		cn := dial()
		fmt.Fprintf(cn, "POST /v1/topics/events/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n%s", 16<<20, strings.Repeat(" ", 1024))
	}
	for range loris {
		cn := dial()
		io.WriteString(cn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	}
	for range total - bodies - loris {
		cn := dial()
		io.WriteString(cn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(cn), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("keep-alive connection %d: %v %v", len(conns), resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	// A probe and a normal client get through: each new connection closes
	// the oldest one without work (slowloris headers first; the slow
	// bodies are busy in a handler and idle connections younger).
	var h struct{ Status string }
	if err := c.Get(context.Background(), "/healthz", nil, &h); err != nil || h.Status != "ok" {
		t.Fatalf("/healthz under the flood: %v %+v", err, h)
	}
	ans, err := c.Publish(context.Background(), "events", []byte(`{"id":"a","text":"hello"}`+"\n"+`{"id":"b","text":"world"}`), "application/x-ndjson", "")
	if err != nil || ans.Accepted != 2 || len(ans.Results) != 2 {
		t.Fatalf("publish under the flood: %v %+v", err, ans)
	}
	if got := metric(open); got != float64(capacity) {
		t.Errorf("%d open connections, want the cap %d", int(got), capacity)
	}
	// Connections past the cap: total-capacity of the flood, one of the
	// test's; each closed an idle one, none was refused.
	if got, want := metric(shedIdle), float64(total-capacity+1); got != want {
		t.Errorf("%v idle connections shed, want %v", got, want)
	}
	if got := metric(refused); got != 0 {
		t.Errorf("%v connections refused, want 0 (there was always one to shed)", got)
	}
	// 100 bodies announced at 16 MiB once cost 1.6 GB; buffers now grow
	// with what arrives.
	grown := metric(heap) - heap0
	t.Logf("%d hostile connections (cap %d): heap in use +%.1f MiB, RSS %.1f MiB", total, capacity, grown/(1<<20), metric(rss)/(1<<20))
	if limit := float64(64<<20 + capacity*32<<10); grown > limit {
		t.Errorf("heap in use grew by %.1f MiB under the flood, want at most %.1f MiB", grown/(1<<20), limit/(1<<20))
	}

	// The flood goes: the server drops its connections and serves as
	// before.
	for _, cn := range conns {
		cn.Close()
	}
	conns = nil
	tr.CloseIdleConnections()
	waitFor(t, "the flood's connections to close", func() error {
		if n := openConns(t, s); n != 1 {
			return fmt.Errorf("%d open connections", n)
		}
		return nil
	})
	ans, err = c.Publish(context.Background(), "events", []byte(`{"id":"c","text":"again"}`), "", "")
	if err != nil || ans.Accepted != 1 {
		t.Fatalf("publish after the flood: %v %+v", err, ans)
	}
	if got := readAll(t, s, "events"); len(got) != 3 {
		t.Fatalf("%d events in the log, want 3", len(got))
	}
}

// TestSlowClientTimeouts: a connection that sends its headers too slowly,
// its body too slowly or nothing after an answer is closed by the server
// when its deadline passes.
func TestSlowClientTimeouts(t *testing.T) {
	s := startServer(t, "testdata/slow.yaml", t.TempDir(), "LF_HEADER_TIMEOUT=1s", "LF_READ_TIMEOUT=2s", "LF_IDLE_TIMEOUT=2s")
	dial := func() net.Conn {
		cn, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cn.Close() })
		cn.SetReadDeadline(time.Now().Add(30 * time.Second)) // each is closed long before
		return cn
	}
	loris := dial()
	io.WriteString(loris, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
	body := dial()
	io.WriteString(body, "POST /v1/topics/events/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"text\":")
	idle := dial()
	io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("idle connection's request: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)

	// Each is closed: EOF after whatever the server answered. The slow
	// body gets 408 first.
	closed := func(name string, r *bufio.Reader) string {
		t.Helper()
		rest, err := io.ReadAll(r) // returns at EOF; the test's deadline bounds it
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return string(rest)
	}
	if rest := closed("slow headers", bufio.NewReader(loris)); rest != "" {
		t.Errorf("slow headers: answered %q, want the connection closed", rest)
	}
	if rest := closed("slow body", bufio.NewReader(body)); !strings.HasPrefix(rest, "HTTP/1.1 408 Request Timeout\r\n") ||
		!strings.HasSuffix(rest, `{"error":"the request body did not arrive within http.read_timeout (2s)"}`+"\n") {
		t.Errorf("slow body: answered %q, want 408", rest)
	}
	if rest := closed("idle keep-alive", br); rest != "" {
		t.Errorf("idle keep-alive: answered %q, want the connection closed", rest)
	}
	var h struct{ Status string }
	if err := s.client().Get(context.Background(), "/healthz", nil, &h); err != nil || h.Status != "ok" {
		t.Fatalf("/healthz: %v %+v", err, h)
	}
}

// openConns is the server's count of open connections.
func openConns(t *testing.T, s *server) int {
	t.Helper()
	// A connection of its own, closed after the answer, so that it does
	// not count in the next look.
	req, _ := http.NewRequest("GET", s.url("/metrics"), nil)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return int(seriesValue(t, body, `lambdaflow_http_open_connections{component="http",pipeline="slow"}`))
}

// seriesValue finds one series in a Prometheus text exposition.
func seriesValue(t *testing.T, body []byte, series string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s in the metrics", series)
	return 0
}
