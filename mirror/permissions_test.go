package mirror

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
)

// readerPermissions are the permissions docs/sites.md gives a link's NATS
// user at the other site: reading, nothing else.
var readerPermissions = &server.Permissions{
	Publish: &server.SubjectPermission{Allow: []string{
		"$JS.API.INFO", "$JS.API.STREAM.INFO.*",
		"$JS.API.CONSUMER.CREATE.*.>", "$JS.API.CONSUMER.MSG.NEXT.*.*", "$JS.API.CONSUMER.DELETE.*.*",
		"$JS.API.DIRECT.GET.*", "$JS.API.DIRECT.GET.*.>", "$JS.API.STREAM.MSG.GET.*",
	}},
	Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
}

// TestMirrorReadOnlyUser pulls from a site whose NATS gives the link only
// the permissions docs/sites.md lists, and checks that they are enough and
// that the link wrote nothing there.
func TestMirrorReadOnlyUser(t *testing.T) {
	port := testenv.FreePort(t)
	ns := startNATS(t, &server.Options{
		ServerName: "eu", Port: port,
		Users: []*server.User{
			{Username: "eu", Password: "eu-pw"},
			{Username: "hq", Password: "hq-pw", Permissions: readerPermissions},
		},
	})

	// eu runs on that server as its admin user.
	eu := newSite(t, "eu", 2)
	eu.close()
	eu.p.Broker.Listen = ""
	eu.p.Broker.URL = "nats://127.0.0.1:" + strconv.Itoa(port)
	eu.p.Broker.User, eu.p.Broker.Password = "eu", "eu-pw"
	eu.open()
	eu.port = port
	eu.publish(0, 200)

	hq := newSite(t, "hq", 3, eu)
	hq.close()
	hq.p.Topics[0].Sources[0].Auth = pipelines.SourceAuth{User: "hq", Password: "hq-pw"}
	hq.open()
	hq.runMirror()
	checkFor(t, 30*time.Second, func() error { return want(hq, map[string]int{"eu": 200}) })
	eu.publish(200, 50)
	checkFor(t, 30*time.Second, func() error { return want(hq, map[string]int{"eu": 250}) })
	checkFor(t, 10*time.Second, func() error { return caughtUp(hq, "mirror.eu.metrics", 2, 250) })

	// Nothing of hq's is at eu: its streams are eu's partitions and buckets.
	jsz, err := ns.Jsz(&server.JSzOptions{Streams: true, Accounts: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, acc := range jsz.AccountDetails {
		for _, st := range acc.Streams {
			if !strings.HasPrefix(st.Name, "LF_metrics_") && !strings.HasPrefix(st.Name, "KV_LF_") {
				t.Errorf("stream %s at eu", st.Name)
			}
		}
	}
}
