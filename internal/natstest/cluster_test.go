package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lambdaflow/lambdaflow/internal/natstest"
	"github.com/lambdaflow/lambdaflow/internal/netns"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

func TestMain(m *testing.M) { testenv.VerifyNoLeaks(m) }

func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	testenv.CheckFor(t, timeout, 200*time.Millisecond, f)
}

func connect(t *testing.T, urls string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond), nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatalf("connect %s: %v", urls, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// publish publishes ids [from, to) to subject, each with its id as
// Nats-Msg-Id so that a retried publish lands once, retrying each until
// the stream acknowledges it or timeout passes.
func publish(t *testing.T, js jetstream.JetStream, subject string, from, to int, timeout time.Duration) {
	t.Helper()
	for i := from; i < to; i++ {
		id := fmt.Sprintf("m-%04d", i)
		eventually(t, timeout, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := js.Publish(ctx, subject, []byte(id), jetstream.WithMsgID(id))
			return err
		})
	}
}

// streamState returns the stream's message count, leader and replicas as
// seen by the connection's server.
func streamInfo(ctx context.Context, js jetstream.JetStream, name string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// TestClusterAcrossHosts runs a 3-node JetStream cluster, one node per
// network namespace: it forms, keeps a quorum when one node's link is cut
// (the stream leader's, so a new leader must be elected), takes the node
// back when the link heals, and does the same after a kill -9 and restart.
func TestClusterAcrossHosts(t *testing.T) {
	nw := netns.New(t)
	hosts := []*netns.Host{nw.AddHost("n0"), nw.AddHost("n1"), nw.AddHost("n2")}
	c := natstest.StartCluster(t, hosts, natstest.Config{})
	_, js := connect(t, c.URLs())

	ctx := context.Background()
	var err error
	eventually(t, 30*time.Second, func() error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err = js.CreateStream(cctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, Replicas: 3, Storage: jetstream.FileStorage})
		return err
	})
	publish(t, js, "orders.new", 0, 100, 30*time.Second)

	// Every node of the cluster holds a current replica.
	allCurrent := func(want uint64) func() error {
		return func() error {
			si, err := streamInfo(ctx, js, "ORDERS")
			if err != nil {
				return err
			}
			if si.State.Msgs != want || si.Cluster == nil || si.Cluster.Leader == "" || len(si.Cluster.Replicas) != 2 {
				return fmt.Errorf("stream state %d msgs, cluster %+v; want %d msgs, a leader and 2 followers", si.State.Msgs, si.Cluster, want)
			}
			for _, r := range si.Cluster.Replicas {
				if !r.Current || r.Offline || r.Lag != 0 {
					return fmt.Errorf("replica %s: current %v offline %v lag %d", r.Name, r.Current, r.Offline, r.Lag)
				}
			}
			return nil
		}
	}
	eventually(t, 30*time.Second, allCurrent(100))

	node := func(name string) (int, *natstest.Node) {
		for i, n := range c.Nodes {
			if n.Name == name {
				return i, n
			}
		}
		t.Fatalf("no node %q", name)
		return 0, nil
	}
	others := func(i int) string {
		var urls []string
		for j, n := range c.Nodes {
			if j != i {
				urls = append(urls, n.ClientURL())
			}
		}
		return fmt.Sprint(urls[0], ",", urls[1])
	}

	t.Run("cut the stream leader", func(t *testing.T) {
		si, err := streamInfo(ctx, js, "ORDERS")
		if err != nil {
			t.Fatal(err)
		}
		i, leader := node(si.Cluster.Leader)
		_, js2 := connect(t, others(i))
		if err := leader.Host.Cut(); err != nil {
			t.Fatal(err)
		}
		healed := false
		t.Cleanup(func() {
			if !healed {
				leader.Host.Heal()
			}
		})
		// The two others elect a new leader and go on taking writes.
		publish(t, js2, "orders.new", 100, 150, 60*time.Second)
		eventually(t, 30*time.Second, func() error {
			si, err := streamInfo(ctx, js2, "ORDERS")
			if err != nil {
				return err
			}
			if si.Cluster.Leader == leader.Name || si.State.Msgs != 150 {
				return fmt.Errorf("leader %s, %d msgs; want a new leader and 150", si.Cluster.Leader, si.State.Msgs)
			}
			return nil
		})
		if err := leader.Host.Heal(); err != nil {
			t.Fatal(err)
		}
		healed = true
		// The node rejoins and catches up on what it missed.
		eventually(t, 60*time.Second, allCurrent(150))
		eventually(t, 30*time.Second, func() error { return leader.Healthy(ctx) })
	})

	t.Run("kill -9 and restart a node", func(t *testing.T) {
		victim := c.Nodes[1]
		victim.Kill()
		if victim.Running() {
			t.Fatal("killed node still running")
		}
		_, js2 := connect(t, others(1))
		publish(t, js2, "orders.new", 150, 200, 60*time.Second)
		victim.Start(t)
		victim.WaitHealthy(t, 60*time.Second)
		eventually(t, 60*time.Second, allCurrent(200))
	})

	// Exactly the published ids, each once, in order: no write was lost or
	// doubled by the retries across the leader change.
	// The JetStream API of the connection's server may not answer yet
	// ("no responders") while the restarted node rejoins: the read is
	// retried, its content is not.
	want := make([]string, 200)
	for i := range want {
		want[i] = fmt.Sprintf("m-%04d", i)
	}
	eventually(t, 30*time.Second, func() error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		cons, err := js.OrderedConsumer(cctx, "ORDERS", jetstream.OrderedConsumerConfig{})
		if err != nil {
			return err
		}
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			return err
		}
		var got []string
		for m := range batch.Messages() {
			got = append(got, string(m.Data()))
		}
		if batch.Error() != nil && !errors.Is(batch.Error(), jetstream.ErrNoMessages) {
			return batch.Error()
		}
		if !slices.Equal(got, want[:min(len(got), len(want))]) {
			t.Fatalf("the stream holds %d messages, not m-0000…m-0199 in order: %v", len(got), got)
		}
		if len(got) != len(want) {
			return fmt.Errorf("read %d of the 200 messages", len(got))
		}
		return nil
	})
}
