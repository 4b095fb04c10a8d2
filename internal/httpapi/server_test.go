package httpapi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// testServer serves h with a cap of max connections on a loopback port; its
// clock is the returned one, which the test moves.
func testServer(t *testing.T, h http.Handler, max int) (*Server, string, *atomic.Int64) {
	t.Helper()
	s := NewServer(h, Limits{ReadHeaderTimeout: time.Minute, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		IdleTimeout: time.Minute, MaxConnections: max}, prometheus.NewRegistry(), nil)
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	s.now = func() time.Time { return time.Unix(0, clock.Load()) }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return s, ln.Addr().String(), &clock
}

func dialT(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// waitUntil polls cond until it holds, failing after 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestServerRefusesWhenAllBusy: at the cap with every connection in a
// handler, a new connection is answered 503 and closed; once one is free,
// new connections get in again.
func TestServerRefusesWhenAllBusy(t *testing.T) {
	release := make(chan struct{})
	var inHandler sync.WaitGroup
	inHandler.Add(2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			inHandler.Done()
			<-release
		}
		io.WriteString(w, "ok")
	})
	s, addr, _ := testServer(t, h, 2)
	var blocked []net.Conn
	for range 2 {
		c := dialT(t, addr)
		io.WriteString(c, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
		blocked = append(blocked, c)
	}
	inHandler.Wait()

	c := dialT(t, addr)
	rest, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	want := "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 46\r\n\r\n" +
		`{"error":"too many connections; retry later"}` + "\n"
	if string(rest) != want {
		t.Fatalf("past the cap: %q, want %q", rest, want)
	}
	if got := value(s.refused); got != 1 {
		t.Errorf("refused %v, want 1", got)
	}
	close(release)
	for _, b := range blocked {
		resp, err := http.ReadResponse(bufio.NewReader(b), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("blocked request: %v %v", resp, err)
		}
	}
	// Both are idle now: a new connection sheds the older.
	c = dialT(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the release: %v %v", resp, err)
	}
	if got := value(s.shed.WithLabelValues("idle")); got != 1 {
		t.Errorf("shed idle %v, want 1", got)
	}
	if got := value(s.open); got != 2 {
		t.Errorf("open %v, want 2", got)
	}
}

// TestServerShedsStalledBody: a connection whose handler has waited for
// body bytes longer than stallGrace makes room for a new one; one that
// waited less does not.
func TestServerShedsStalledBody(t *testing.T) {
	reading := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			reading <- struct{}{}
			_, err := io.ReadAll(r.Body)
			fmt.Fprint(w, err)
			return
		}
		io.WriteString(w, "ok")
	})
	s, addr, clock := testServer(t, h, 1)
	slow := dialT(t, addr)
	io.WriteString(slow, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
	<-reading
	// The handler reads what arrived, then waits for the rest.
	waitUntil(t, "the handler to wait for the body", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			if c.bodyWait.Load() != 0 {
				return true
			}
		}
		return false
	})

	// Not stalled long enough yet: the new connection is refused.
	c := dialT(t, addr)
	if rest, _ := io.ReadAll(c); !strings.HasPrefix(string(rest), "HTTP/1.1 503 ") {
		t.Fatalf("with a body waiting under %s: %q, want 503", stallGrace, rest)
	}
	clock.Add(int64(stallGrace))
	c = dialT(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("with the body stalled: %v %v", resp, err)
	}
	if got := value(s.shed.WithLabelValues("slow")); got != 1 {
		t.Errorf("shed slow %v, want 1", got)
	}
	// The stalled connection was closed under its handler.
	if _, err := io.ReadAll(slow); err != nil {
		t.Fatalf("stalled connection: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	m.Write(&d)
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
