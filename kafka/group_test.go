package kafka

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// owned tracks the partitions a group member owns, from its callbacks.
type owned struct {
	mu    sync.Mutex
	parts map[int32]bool
}

func (o *owned) opts() []kgo.Opt {
	o.parts = map[int32]bool{}
	set := func(m map[string][]int32, v bool) {
		o.mu.Lock()
		defer o.mu.Unlock()
		for _, p := range m["metrics"] {
			if v {
				o.parts[p] = true
			} else {
				delete(o.parts, p)
			}
		}
	}
	return []kgo.Opt{
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { set(m, true) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { set(m, false) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { set(m, false) }),
	}
}

func (o *owned) list() []int32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []int32
	for p := range o.parts {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// poller polls a client in the background until stopped, collecting
// records (a group member must poll for its rebalances to run).
type poller struct {
	cl     *kgo.Client
	mu     sync.Mutex
	recs   []*kgo.Record
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startPolling(cl *kgo.Client) *poller {
	ctx, cancel := context.WithCancel(context.Background())
	p := &poller{cl: cl, cancel: cancel}
	p.wg.Go(func() {
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			p.mu.Lock()
			p.recs = append(p.recs, fs.Records()...)
			p.mu.Unlock()
		}
	})
	return p
}

func (p *poller) stop() { p.cancel(); p.wg.Wait() }

func (p *poller) ids() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, r := range p.recs {
		out = append(out, string(r.Headers[0].Value))
	}
	return out
}

// TestFranzGroupRebalance: two members of a group share the two partitions;
// when one leaves, the other gets both and reads what is produced to them.
func TestFranzGroupRebalance(t *testing.T) {
	e := start(t, "", "")
	var oa, ob owned
	member := func(o *owned) *kgo.Client {
		opts := append([]kgo.Opt{
			kgo.ConsumerGroup("g1"), kgo.ConsumeTopics("metrics"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.SessionTimeout(3 * time.Second), kgo.HeartbeatInterval(200 * time.Millisecond),
			kgo.Balancers(kgo.RangeBalancer()),
		}, o.opts()...)
		return e.client(opts...)
	}
	a := member(&oa)
	pa := startPolling(a)
	defer pa.stop()
	waitFor(t, 15*time.Second, "the first member to own both partitions", func() bool { return slices.Equal(oa.list(), []int32{0, 1}) })

	b := member(&ob)
	pb := startPolling(b)
	waitFor(t, 15*time.Second, "the partitions to be shared", func() bool {
		la, lb := oa.list(), ob.list()
		return len(la) == 1 && len(lb) == 1 && la[0] != lb[0]
	})
	bPart := ob.list()[0]

	prod := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := context.Background()
	if err := prod.ProduceSync(ctx, record(bPart, "to-b", sample(1, "x"))).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "member b to read its partition", func() bool { return slices.Contains(pb.ids(), "to-b") })

	// b stops (its client leaves the group): a takes both partitions.
	pb.stop()
	b.Close()
	waitFor(t, 15*time.Second, "a to own both partitions again", func() bool { return slices.Equal(oa.list(), []int32{0, 1}) })
	if err := prod.ProduceSync(ctx, record(bPart, "after-b", sample(2, "x"))).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a to read b's partition", func() bool { return slices.Contains(pa.ids(), "after-b") })
}

// TestGroupSessionExpiry: a member that stops heartbeating (a crashed
// process) is removed after its session timeout, and the group rebalances
// without it. The silent member speaks the protocol directly.
func TestGroupSessionExpiry(t *testing.T) {
	e := start(t, "", "")
	raw := e.client()
	ctx := context.Background()

	// The silent member joins first and takes part in a generation.
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = "g2", 1500, 5000
	join.ProtocolType = "consumer"
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = []string{"metrics"}
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: meta.AppendTo(nil)}}
	resp, err := join.RequestWith(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.MemberIDRequired.Code {
		t.Fatalf("first join: error %d, want MEMBER_ID_REQUIRED", resp.ErrorCode)
	}
	join.MemberID = resp.MemberID
	if resp, err = join.RequestWith(ctx, raw); err != nil || resp.ErrorCode != 0 || resp.LeaderID != join.MemberID {
		t.Fatalf("join: %v %+v", err, resp)
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.Generation, sync.MemberID = "g2", resp.Generation, join.MemberID
	assign := kmsg.NewConsumerMemberAssignment()
	assign.Topics = []kmsg.ConsumerMemberAssignmentTopic{{Topic: "metrics", Partitions: []int32{0, 1}}}
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: join.MemberID, MemberAssignment: assign.AppendTo(nil)}}
	if sresp, err := sync.RequestWith(ctx, raw); err != nil || sresp.ErrorCode != 0 {
		t.Fatalf("sync: %v %+v", err, sresp)
	}

	// A real consumer joins; the silent member never rejoins nor
	// heartbeats, so the rebalance completes without it once its session
	// expires, and the consumer owns both partitions.
	var o owned
	cl := e.client(append([]kgo.Opt{kgo.ConsumerGroup("g2"), kgo.ConsumeTopics("metrics"),
		kgo.Balancers(kgo.RangeBalancer()), kgo.SessionTimeout(3 * time.Second), kgo.HeartbeatInterval(200 * time.Millisecond)}, o.opts()...)...)
	p := startPolling(cl)
	defer p.stop()
	waitFor(t, 20*time.Second, "the consumer to own both partitions", func() bool { return slices.Equal(o.list(), []int32{0, 1}) })

	d := kmsg.NewPtrDescribeGroupsRequest()
	d.Groups = []string{"g2"}
	dr, err := d.RequestWith(ctx, raw)
	if err != nil || len(dr.Groups) != 1 {
		t.Fatal(err)
	}
	g := dr.Groups[0]
	if g.State != "Stable" || len(g.Members) != 1 || g.Members[0].MemberID == join.MemberID {
		t.Errorf("group after expiry: state %s, members %v", g.State, g.Members)
	}
}

// TestFranzCommittedOffsetsSurviveRestart: a group's committed offsets are
// in the log: after a restart of the process the group resumes there, and
// lag shows them as consumer kafka.<group>.
func TestFranzCommittedOffsetsSurviveRestart(t *testing.T) {
	e := start(t, "", "")
	ctx := context.Background()
	prod := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for i := range 6 {
		recs = append(recs, record(int32(i%2), fmt.Sprintf("r-%d", i), sample(i, "h")))
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cons := e.client(kgo.ConsumerGroup("g3"), kgo.ConsumeTopics("metrics"), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := consume(t, cons, 6)
	if err := cons.CommitRecords(ctx, got...); err != nil {
		t.Fatalf("commit: %v", err)
	}
	cons.Close()

	lag, err := e.b.Lag(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range lag {
		if l.Consumer == "kafka.g3" {
			n++
			if l.Offset != 3 || l.EndOffset != 3 || l.Lag != 0 {
				t.Errorf("lag of kafka.g3 on %d: %+v", l.Partition, l)
			}
		}
	}
	if n != 2 {
		t.Errorf("lag shows kafka.g3 on %d partitions, want 2: %+v", n, lag)
	}
	// GET /v1/groups shows it (the listener describes its groups).
	gs, err := e.srv.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(gs, func(g api.Group) bool { return g.Group == "g3" })
	if i < 0 || gs[i].Consumer != "kafka.g3" || gs[i].Protocol != "kafka" || gs[i].State != "Empty" || len(gs[i].Partitions) != 2 ||
		gs[i].Partitions[0].Committed != 3 || gs[i].Partitions[1].Committed != 3 || gs[i].Lag != 0 {
		t.Errorf("groups: %+v", gs)
	}

	e.restart()
	prod = e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := prod.ProduceSync(ctx, record(0, "after", sample(9, "h"))).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cons = e.client(kgo.ConsumerGroup("g3"), kgo.ConsumeTopics("metrics"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got = consume(t, cons, 1)
	if id := string(got[0].Headers[0].Value); id != "after" || got[0].Offset != 3 || got[0].Partition != 0 {
		t.Errorf("after the restart the group read %s at %d/%d, want after at 0/3", id, got[0].Partition, got[0].Offset)
	}
	// Nothing else arrives: the committed events are not read again.
	short, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancel()
	if more := cons.PollFetches(short).Records(); len(more) != 0 {
		t.Errorf("read %d more records after the restart", len(more))
	}
}

// TestGroupAcrossProcesses: two Lambdaflow processes on one NATS log each
// coordinate the group for the member connected to them; the group state
// in the key-value bucket keeps them consistent: the members share the
// partitions, and when one leaves, the other gets both.
func TestGroupAcrossProcesses(t *testing.T) {
	nats := testenv.FreeAddr(t)
	p1 := start(t, "", "broker: {listen: \""+nats+"\"}")
	p2 := start(t, "", "broker: {url: \"nats://"+nats+"\"}")
	var oa, ob owned
	member := func(e *env, o *owned) *kgo.Client {
		return e.client(append([]kgo.Opt{kgo.ConsumerGroup("shared"), kgo.ConsumeTopics("metrics"),
			kgo.Balancers(kgo.RoundRobinBalancer()), kgo.SessionTimeout(3 * time.Second), kgo.HeartbeatInterval(200 * time.Millisecond)}, o.opts()...)...)
	}
	a := member(p1, &oa)
	pa := startPolling(a)
	defer pa.stop()
	waitFor(t, 15*time.Second, "member a to own both partitions", func() bool { return slices.Equal(oa.list(), []int32{0, 1}) })
	b := member(p2, &ob)
	pb := startPolling(b)
	waitFor(t, 15*time.Second, "the partitions to be shared across processes", func() bool {
		la, lb := oa.list(), ob.list()
		return len(la) == 1 && len(lb) == 1 && la[0] != lb[0]
	})
	pb.stop()
	b.Close()
	waitFor(t, 15*time.Second, "member a to own both partitions again", func() bool { return slices.Equal(oa.list(), []int32{0, 1}) })
}
