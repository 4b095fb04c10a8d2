package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// conn is one client connection. Requests are handled one at a time, in
// order, as Kafka brokers do: a client that wants concurrency opens more
// connections (or pipelines requests, which then queue here).
type conn struct {
	s        *Server
	nc       net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	remote   string
	clientID string

	// SASL state: mechanism chosen by SaslHandshake, and the token that
	// authenticated (its scopes are package access's).
	saslMech      string
	authenticated bool
	token         string
	// closeAfter, when set, closes the connection once the current
	// answer is written (a failed authentication), for this reason.
	closeAfter string

	// fetch cursors per partition, so that a consumer's next Fetch starts
	// where the last one ended without searching the log.
	cursors map[topicPartition]*cursorAt
	buf     []byte // response buffer, reused
}

type topicPartition struct {
	topic string
	part  int32
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{
		s:       s,
		nc:      nc,
		r:       bufio.NewReaderSize(nc, 64<<10),
		w:       bufio.NewWriterSize(nc, 64<<10),
		remote:  nc.RemoteAddr().String(),
		cursors: make(map[topicPartition]*cursorAt),
	}
}

// errClose ends a connection after a protocol violation; the reason is
// logged.
type errClose struct{ reason string }

func (e *errClose) Error() string { return e.reason }

func (c *conn) serve(ctx context.Context) {
	defer c.nc.Close()
	c.s.metrics.connections.Inc()
	defer c.s.metrics.connections.Dec()
	var size [4]byte
	for {
		if _, err := io.ReadFull(c.r, size[:]); err != nil {
			c.closed(err)
			return
		}
		n := int(int32(binary.BigEndian.Uint32(size[:])))
		if n < 8 || n > c.s.maxRequest {
			c.s.logger.Warn("kafka: closing connection: request size out of bounds", "remote", c.remote, "client", c.clientID,
				"size", n, "max", c.s.maxRequest, "hint", "raise kafka.max_request_bytes or lower the client's max.request.size")
			return
		}
		req := make([]byte, n)
		if _, err := io.ReadFull(c.r, req); err != nil {
			c.closed(err)
			return
		}
		if err := c.handle(ctx, req); err != nil {
			var ec *errClose
			if errors.As(err, &ec) {
				c.s.logger.Warn("kafka: closing connection", "remote", c.remote, "client", c.clientID, "reason", ec.reason)
			} else if ctx.Err() == nil {
				c.s.logger.Debug("kafka: connection ended", "remote", c.remote, "client", c.clientID, "err", err)
			}
			return
		}
	}
}

func (c *conn) closed(err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	c.s.logger.Debug("kafka: connection read failed", "remote", c.remote, "client", c.clientID, "err", err)
}

// header is a request header (versions 1 and 2).
type header struct {
	key, version int16
	correlation  int32
}

// handle decodes one request, answers it, and writes the answer.
func (c *conn) handle(ctx context.Context, b []byte) error {
	var h header
	h.key = int16(binary.BigEndian.Uint16(b[0:]))
	h.version = int16(binary.BigEndian.Uint16(b[2:]))
	h.correlation = int32(binary.BigEndian.Uint32(b[4:]))
	rest := b[8:]
	if len(rest) < 2 {
		return &errClose{"truncated request header"}
	}
	idLen := int(int16(binary.BigEndian.Uint16(rest)))
	rest = rest[2:]
	if idLen > 0 {
		if idLen > len(rest) {
			return &errClose{"truncated client id"}
		}
		c.clientID = string(rest[:idLen])
		rest = rest[idLen:]
	}

	req := kmsg.RequestForKey(h.key)
	if req == nil {
		return &errClose{fmt.Sprintf("unknown API key %d", h.key)}
	}
	name := kmsg.NameForKey(h.key)
	c.s.metrics.requests.WithLabelValues(name).Inc()

	if h.key == apiVersionsKey {
		return c.apiVersions(h, rest)
	}
	min, max, ok := supported(h.key)
	if !ok || h.version < min || h.version > max {
		return c.unsupported(h, req, name)
	}
	req.SetVersion(h.version)
	if req.IsFlexible() {
		var ok bool
		if rest, ok = skipTags(rest); !ok {
			return &errClose{"bad tagged fields in the " + name + " request header"}
		}
	}
	if err := req.ReadFrom(rest); err != nil {
		return &errClose{fmt.Sprintf("malformed %s v%d request: %v", name, h.version, err)}
	}
	if h.key != saslHandshakeKey && h.key != saslAuthenticateKey && c.saslMech != "" && !c.authenticated {
		return &errClose{name + " before SASL authentication completed"}
	}
	start := time.Now()
	resp, err := c.dispatch(ctx, req)
	c.s.metrics.seconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
	if err != nil {
		return err
	}
	if resp == nil {
		return nil // produce with acks=0: no answer
	}
	if err := c.write(h, resp); err != nil {
		return err
	}
	if c.closeAfter != "" {
		return &errClose{c.closeAfter}
	}
	return nil
}

// write sends resp as the answer to the request with header h.
func (c *conn) write(h header, resp kmsg.Response) error {
	resp.SetVersion(h.version)
	b := c.buf[:0]
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(h.correlation))
	// ApiVersions answers with header v0 whatever its version, so that a
	// client that does not know the broker's versions can read it.
	if resp.IsFlexible() && h.key != apiVersionsKey {
		b = append(b, 0) // no tagged fields
	}
	b = resp.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	if cap(b) <= 1<<20 {
		c.buf = b
	}
	c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.w.Write(b); err != nil {
		return err
	}
	return c.w.Flush()
}

// unsupported answers a request of an API or version this listener does not
// serve: its response kind with UNSUPPORTED_VERSION in the top-level error
// code, as clients expect; responses without one cannot carry the error,
// and the connection is closed instead, with the reason logged.
func (c *conn) unsupported(h header, req kmsg.Request, name string) error {
	resp := req.ResponseKind()
	if h.version < 0 || h.version > resp.MaxVersion() {
		return &errClose{fmt.Sprintf("%s v%d is not supported (see ApiVersions)", name, h.version)}
	}
	v := reflect.ValueOf(resp).Elem()
	f := v.FieldByName("ErrorCode")
	if !f.IsValid() || f.Kind() != reflect.Int16 {
		return &errClose{fmt.Sprintf("%s v%d is not supported (see ApiVersions)", name, h.version)}
	}
	f.SetInt(int64(kerr.UnsupportedVersion.Code))
	if m := v.FieldByName("ErrorMessage"); m.IsValid() && m.Kind() == reflect.Pointer && m.Type().Elem().Kind() == reflect.String {
		msg := fmt.Sprintf("%s v%d is not supported by this Lambdaflow listener", name, h.version)
		m.Set(reflect.ValueOf(&msg))
	}
	c.s.logger.Debug("kafka: unsupported request", "api", name, "version", h.version, "client", c.clientID)
	return c.write(h, resp)
}

// skipTags skips a tagged-field section.
func skipTags(b []byte) ([]byte, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, false
	}
	b = b[k:]
	for range n {
		_, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, false
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < size {
			return nil, false
		}
		b = b[k+int(size):]
	}
	return b, true
}

// dispatch answers one decoded request. A nil response means none is sent.
func (c *conn) dispatch(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	switch r := req.(type) {
	case *kmsg.MetadataRequest:
		return c.metadata(ctx, r), nil
	case *kmsg.ProduceRequest:
		return c.produce(ctx, r), nil
	case *kmsg.FetchRequest:
		return c.fetch(ctx, r), nil
	case *kmsg.ListOffsetsRequest:
		return c.listOffsets(ctx, r), nil
	case *kmsg.FindCoordinatorRequest:
		return c.findCoordinator(r), nil
	case *kmsg.JoinGroupRequest:
		return c.joinGroup(ctx, r), nil
	case *kmsg.SyncGroupRequest:
		return c.syncGroup(ctx, r), nil
	case *kmsg.HeartbeatRequest:
		return c.heartbeat(ctx, r), nil
	case *kmsg.LeaveGroupRequest:
		return c.leaveGroup(ctx, r), nil
	case *kmsg.OffsetCommitRequest:
		return c.offsetCommit(ctx, r), nil
	case *kmsg.OffsetFetchRequest:
		return c.offsetFetch(ctx, r), nil
	case *kmsg.DescribeGroupsRequest:
		return c.describeGroups(ctx, r), nil
	case *kmsg.ListGroupsRequest:
		return c.listGroups(ctx, r), nil
	case *kmsg.InitProducerIDRequest:
		return c.initProducerID(ctx, r), nil
	case *kmsg.SASLHandshakeRequest:
		return c.saslHandshake(r), nil
	case *kmsg.SASLAuthenticateRequest:
		return c.saslAuthenticate(r)
	case *kmsg.DescribeConfigsRequest:
		return c.describeConfigs(r), nil
	case *kmsg.CreateTopicsRequest:
		return c.createTopics(r), nil
	case *kmsg.DescribeClusterRequest:
		return c.describeCluster(r), nil
	}
	return nil, &errClose{"no handler for " + kmsg.NameForKey(req.Key())}
}
