package elasticsearch

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// rejectingProxy forwards to a real OpenSearch and, while reject > 0, turns
// the answer to a bulk request into the one a node with a full write queue
// gives: its first items refused with 429 es_rejected_execution_exception
// (they were indexed, which resending must not double).
type rejectingProxy struct {
	*httptest.Server
	reject atomic.Int64 // bulk answers still to tamper with
	bulks  atomic.Int64 // bulk requests seen
}

func newRejectingProxy(t *testing.T, target string, items int) *rejectingProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &rejectingProxy{}
	p.reject.Store(1)
	rp := httputil.NewSingleHostReverseProxy(u)
	direct := rp.Director
	rp.Director = func(r *http.Request) {
		direct(r)
		r.Header.Del("Accept-Encoding") // read the answer as plain JSON
	}
	rp.ModifyResponse = func(resp *http.Response) error {
		if !strings.HasSuffix(resp.Request.URL.Path, "/_bulk") {
			return nil
		}
		p.bulks.Add(1)
		if p.reject.Add(-1) < 0 {
			p.reject.Store(0)
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var out map[string]any
		if err := json.Unmarshal(body, &out); err != nil {
			return err
		}
		list, _ := out["items"].([]any)
		for i := 0; i < items && i < len(list); i++ {
			it := list[i].(map[string]any)["index"].(map[string]any)
			it["status"] = 429
			it["error"] = map[string]any{"type": "es_rejected_execution_exception", "reason": "rejected by the test proxy"}
		}
		out["errors"] = true
		body, _ = json.Marshal(out)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Del("Content-Length")
		resp.Header.Del("Content-Encoding")
		return nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	rp.Transport = tr
	p.Server = httptest.NewServer(rp)
	t.Cleanup(func() {
		p.Close()
		tr.CloseIdleConnections()
	})
	return p
}
