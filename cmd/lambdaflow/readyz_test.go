package main

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/client"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// TestReadyzNamesWhatIsDown runs a sink whose database is unreachable: the
// process serves, /healthz is 200, and /readyz is 503 naming that sink only,
// without a word of its database.
func TestReadyzNamesWhatIsDown(t *testing.T) {
	port := testenv.FreePort(t) // nothing listens there: the sink's database is down

	s := launch(t, "testdata/readyz.yaml", t.TempDir(), "LF_CLOSED_PORT="+strconv.Itoa(port))

	deadline := time.Now().Add(30 * time.Second)
	for {
		var ans api.Health
		err := s.client().Get(context.Background(), "/readyz", nil, &ans)
		var e *client.Error
		if errors.As(err, &e) {
			json.Unmarshal(e.Body, &ans)
			if e.Status == 503 {
				// Public: the part and a short reason, nothing of the
				// database (its user, name, host or port).
				for _, secret := range []string{"nobody", "none", strconv.Itoa(port), "127.0.0.1"} {
					if strings.Contains(string(e.Body), secret) {
						t.Fatalf("/readyz shows %q: %s", secret, e.Body)
					}
				}
				want := `{"status":"unavailable","down":{"sink archive":"unreachable"},"parts":["sink archive"]}` + "\n"
				if string(e.Body) == want && e.RetryAfter > 0 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz: %d %+v; want 503 naming only \"sink archive\"", e.Status, ans)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("/readyz: %v %+v; want 503 naming only \"sink archive\"", err, ans)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var h api.Health
	if err := s.client().Get(context.Background(), "/healthz", nil, &h); err != nil || h.Status != "ok" {
		t.Fatalf("/healthz: %v %+v", err, h)
	}
}
