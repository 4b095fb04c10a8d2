package natstest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lambdaflow/lambdaflow/internal/natstest"
	"github.com/lambdaflow/lambdaflow/internal/netns"
)

// TestTwoSites runs two sites, each a standalone JetStream server in its own
// namespace with its own JetStream domain, the second joined to the first
// by a leaf node connection. A stream of site b sources a stream of site a
// across it; a partition between the sites stops the flow, healing it
// resumes where it stopped. This is the setup to build mirroring tests on.
func TestTwoSites(t *testing.T) {
	nw := netns.New(t)
	ha, hb := nw.AddHost("site-a"), nw.AddHost("site-b")
	// Short pings, so that a link that went silent is noticed in seconds.
	const pings = "ping_interval: \"1s\"\nping_max: 3\n"
	a := natstest.StartServer(t, ha, natstest.Config{Domain: "a",
		Extra: pings + fmt.Sprintf("leafnodes { listen: %q }\n", ha.Addr(natstest.LeafPort))})
	b := natstest.StartServer(t, hb, natstest.Config{Domain: "b",
		Extra: pings + fmt.Sprintf("leafnodes { remotes: [ { url: %q } ] }\n", "nats-leaf://"+ha.Addr(natstest.LeafPort))})

	// The sites reach each other's client ports, and the test reaches both.
	ctx := context.Background()
	for _, p := range [][2]*netns.Host{{ha, hb}, {hb, ha}} {
		if err := p[0].Reachable(ctx, p[1].Addr(natstest.ClientPort), 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	_, jsa := connect(t, a.ClientURL())
	_, jsb := connect(t, b.ClientURL())

	if _, err := jsa.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := jsb.CreateStream(ctx, jetstream.StreamConfig{Name: "ALL_EVENTS",
		Sources: []*jetstream.StreamSource{{Name: "EVENTS", Domain: "a"}}}); err != nil {
		t.Fatal(err)
	}
	count := func(want uint64) func() error {
		return func() error {
			si, err := streamInfo(ctx, jsb, "ALL_EVENTS")
			if err != nil {
				return err
			}
			if si.State.Msgs != want {
				return fmt.Errorf("site b holds %d messages, want %d", si.State.Msgs, want)
			}
			return nil
		}
	}
	publish(t, jsa, "events.x", 0, 50, 10*time.Second)
	eventually(t, 30*time.Second, count(50))

	if err := ha.Block(hb); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]*netns.Host{{ha, hb}, {hb, ha}} {
		if err := p[0].Reachable(ctx, p[1].Addr(natstest.ClientPort), 700*time.Millisecond); err == nil {
			t.Fatalf("%s reaches %s through the partition", p[0].Label, p[1].Label)
		}
	}
	// Site a still takes writes from the test process; none can cross.
	publish(t, jsa, "events.x", 50, 80, 10*time.Second)
	if err := count(50)(); err != nil {
		t.Fatalf("during the partition: %v", err)
	}
	if err := ha.Unblock(hb); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, count(80))
}
