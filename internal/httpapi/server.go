package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits are what the server grants each client. Every field must be set
// (the pipeline file's defaults fill them).
type Limits struct {
	// ReadHeaderTimeout bounds the time to read a request's headers,
	// ReadTimeout the whole request with its body.
	ReadHeaderTimeout, ReadTimeout time.Duration
	// WriteTimeout bounds handling a request and writing its answer.
	WriteTimeout time.Duration
	// IdleTimeout bounds the wait of a keep-alive connection for its next
	// request.
	IdleTimeout time.Duration
	// MaxConnections caps the open connections; see Server.
	MaxConnections int
}

// stallGrace is how long a handler may wait for more of a request body
// before its connection counts as stalled, and may be closed to make room
// for a new one. A client that is sending keeps its reads shorter than this.
const stallGrace = time.Second

// Server is the HTTP server of a process, hardened against clients that are
// slow, idle or many: every phase of a connection has a deadline (Limits),
// and open connections are capped. At the cap a new connection closes the
// connection that has waited the longest without work in progress (idle
// between requests, still sending its headers, or stalled for stallGrace in
// the middle of its body), so that a flood of slow clients cannot lock out
// a probe or a client that sends its request at once; when every connection
// is busy in a handler, the new one is answered 503 with Retry-After and
// closed. Request bodies are read by the handlers, into buffers that grow
// with what arrives.
//
// Its metrics: lambdaflow_http_open_connections,
// lambdaflow_http_refused_connections_total (new connections answered 503
// at the cap) and lambdaflow_http_shed_connections_total by state (idle,
// slow: connections closed to make room).
type Server struct {
	srv    *http.Server
	max    int
	now    func() time.Time
	logger *slog.Logger

	mu       sync.Mutex
	conns    map[net.Conn]*conn // every connection net/http holds
	admitted int                // how many of them count against the cap

	open    prometheus.Gauge
	refused prometheus.Counter
	shed    *prometheus.CounterVec
}

// conn is what the server knows of one open connection.
type conn struct {
	c net.Conn
	// since is when the connection last had no work (accepted, or became
	// idle after an answer), UnixNano.
	since atomic.Int64
	// busy is set while a handler runs for it.
	busy atomic.Bool
	// bodyWait is when the handler started waiting for body bytes, 0 when
	// it is not waiting (UnixNano).
	bodyWait atomic.Int64
	// admitted is set once the connection counts against the cap.
	admitted bool
}

type connKey struct{}

// NewServer returns a server of h with limits lim. Metrics go to reg (nil:
// not exported), messages of the server and of net/http to logger.
func NewServer(h http.Handler, lim Limits, reg prometheus.Registerer, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		max:    max(lim.MaxConnections, 1),
		now:    time.Now,
		logger: logger,
		conns:  map[net.Conn]*conn{},
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lambdaflow_http_open_connections",
			Help: "Client connections open now."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdaflow_http_refused_connections_total",
			Help: "New connections answered 503 because http.max_connections were open and all busy."}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdaflow_http_shed_connections_total",
			Help: "Connections closed to make room for a new one at http.max_connections, by state: idle (between requests or sending headers) or slow (stalled sending a body)."}, []string{"state"}),
	}
	// Both states are exported from the start, at zero: a rate over a
	// series that appears at its first increment misses that one.
	s.shed.WithLabelValues("idle")
	s.shed.WithLabelValues("slow")
	if reg != nil {
		reg.MustRegister(s.open, s.refused, s.shed)
	}
	s.srv = &http.Server{
		Handler:           s.track(h),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		// net/http calls ConnContext and then ConnState(StateNew) for each
		// connection, both in its accept loop.
		ConnContext: s.connContext,
		ConnState:   s.connState,
		ErrorLog:    slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s
}

// Serve accepts connections on ln until Shutdown; like http.Server.Serve
// it returns http.ErrServerClosed after a Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// Shutdown stops accepting, waits for the requests in flight within ctx
// and closes the connections.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// Close closes every connection at once.
func (s *Server) Close() error { return s.srv.Close() }

func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	tc := &conn{c: c}
	tc.since.Store(s.now().UnixNano())
	s.mu.Lock()
	s.conns[c] = tc
	s.mu.Unlock()
	return context.WithValue(ctx, connKey{}, tc)
}

// connState admits new connections against the cap and forgets closed
// ones. It runs in the accept loop for new connections, so admission is
// in the order of arrival.
func (s *Server) connState(c net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		s.admit(c)
	case http.StateIdle:
		s.mu.Lock()
		if tc := s.conns[c]; tc != nil {
			tc.since.Store(s.now().UnixNano())
		}
		s.mu.Unlock()
	case http.StateClosed, http.StateHijacked:
		s.mu.Lock()
		if tc := s.conns[c]; tc != nil {
			delete(s.conns, c)
			if tc.admitted {
				s.admitted--
				s.open.Dec()
			}
		}
		s.mu.Unlock()
	}
}

func (s *Server) admit(c net.Conn) {
	s.mu.Lock()
	tc := s.conns[c]
	if tc == nil { // not through connContext: cannot happen with srv
		s.mu.Unlock()
		return
	}
	var victim *conn
	var state string
	if s.admitted >= s.max {
		victim, state = s.victim()
		if victim == nil {
			delete(s.conns, c)
			s.mu.Unlock()
			s.refuse(c)
			return
		}
		victim.admitted = false
		delete(s.conns, victim.c)
		s.admitted--
		s.open.Dec()
	}
	tc.admitted = true
	s.admitted++
	s.open.Inc()
	s.mu.Unlock()
	if victim != nil {
		s.shed.WithLabelValues(state).Inc()
		victim.c.Close()
	}
}

// victim returns the admitted connection to close for a new one, and its
// state: the one without work the longest, else the one stalled the
// longest in its body, else nil. s.mu is held.
func (s *Server) victim() (*conn, string) {
	now := s.now().UnixNano()
	var idle, slow *conn
	var idleSince, slowSince int64
	for _, o := range s.conns {
		if !o.admitted {
			continue
		}
		if !o.busy.Load() {
			if t := o.since.Load(); idle == nil || t < idleSince {
				idle, idleSince = o, t
			}
			continue
		}
		if t := o.bodyWait.Load(); t != 0 && now-t >= int64(stallGrace) && (slow == nil || t < slowSince) {
			slow, slowSince = o, t
		}
	}
	if idle != nil {
		return idle, "idle"
	}
	if slow != nil {
		return slow, "slow"
	}
	return nil, ""
}

// refusal is the whole answer to a connection past the cap.
var refusal = func() []byte {
	body := `{"error":"too many connections; retry later"}` + "\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// refuse answers c 503 and closes it. A new connection's send buffer is
// empty, so the write does not wait; the deadline covers a broken one.
func (s *Server) refuse(c net.Conn) {
	s.refused.Inc()
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond)) // the kernel's clock, not the injected one
	c.Write(refusal)
	c.Close()
}

// track marks each connection busy while a handler runs for it, and
// watches its body reads for stalls.
func (s *Server) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tc, _ := r.Context().Value(connKey{}).(*conn)
		if tc == nil {
			h.ServeHTTP(w, r)
			return
		}
		tc.busy.Store(true)
		defer func() {
			tc.bodyWait.Store(0)
			tc.since.Store(s.now().UnixNano())
			tc.busy.Store(false)
		}()
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &watchedBody{ReadCloser: r.Body, c: tc, now: s.now}
		}
		h.ServeHTTP(w, r)
	})
}

// watchedBody records when a handler waits for body bytes.
type watchedBody struct {
	io.ReadCloser
	c   *conn
	now func() time.Time
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.c.bodyWait.Store(b.now().UnixNano())
	n, err := b.ReadCloser.Read(p)
	b.c.bodyWait.Store(0)
	return n, err
}
