package main

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReadyzNamesWhatIsDown runs a sink whose database is unreachable: the
// process serves, /healthz is 200, and /readyz is 503 naming that sink only.
func TestReadyzNamesWhatIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now: the sink's database is down

	s := launch(t, "testdata/readyz.yaml", t.TempDir(), "LF_CLOSED_PORT="+strconv.Itoa(port))
	addr := s.addr

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			var ans struct {
				Status string            `json:"status"`
				Down   map[string]string `json:"down"`
			}
			json.NewDecoder(resp.Body).Decode(&ans)
			resp.Body.Close()
			if resp.StatusCode == 503 && len(ans.Down) == 1 && strings.Contains(ans.Down["sink archive"], "archive") &&
				resp.Header.Get("Retry-After") != "" && ans.Status == "unavailable" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz: %d %+v; want 503 naming only \"sink archive\"", resp.StatusCode, ans)
			}
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", err, resp)
	}
	resp.Body.Close()
}
