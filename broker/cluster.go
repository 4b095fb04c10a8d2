package broker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/retry"
)

// Any number of processes may run the same role against one log. Each
// process joins the cluster as a Node: a key of its own in the nodes
// bucket, written every heartbeatEvery and gone nodeTTL after the last
// write (the bucket's MaxAge), so the keys present are the live processes.
// For every consumer it runs (Node.Own), each partition is owned by exactly
// one of the live processes running that consumer, the one the assignment
// rule picks (assign). Ownership is a record in the offsets bucket,
// own.<consumer>.<partition> = {node, epoch}, changed only with
// compare-and-set: a process takes a partition when its record is free or
// names a process that is gone, giving it the next epoch, and gives it back
// (keeping the epoch) when the partition is assigned elsewhere.
//
// Fencing: on taking a partition the new owner also writes its node and
// epoch into the consumer's committed-offset records of that partition
// (compare-and-set), and every commit of an owner is a compare-and-set on
// the revision its own last write left. So once the new owner has taken
// over, a stale owner (killed and not yet gone, or cut off) can no longer
// commit: its commit fails with ErrFenced. A process that cannot write its
// heartbeat for fenceAfter stops all the work it owns by itself, before
// its key expires and others take over; it comes back as a new node. This
// is NATS' own consensus (each compare-and-set is a write to one stream,
// ordered by its raft leader); there is no coordinator.

// Timing of membership; docs/cluster.md explains the margins and how they
// were measured.
//
// A node's key lives nodeTTL after its last heartbeat; a node that has not
// stored a heartbeat for fenceAfter stops its work, nodeTTL - fenceAfter
// before the others may take it (they act at the key's expiry, within
// rebalanceEvery). fenceAfter outlasts most JetStream leader elections
// (NATS' raft elects 4-9 s after it last heard from a lost leader, about
// 5.7 s on average with two followers left), so that losing the NATS node
// that leads the nodes bucket seldom makes every process give its
// partitions up; and a process killed with -9 has its partitions taken
// within nodeTTL + rebalanceEvery (11 s) and a move or two, inside the
// 15 s the cluster promises.
const (
	nodeTTL        = 10 * time.Second
	heartbeatEvery = time.Second
	fenceAfter     = 7 * time.Second
	rebalanceEvery = time.Second
	// heartbeatTimeout bounds one heartbeat write.
	heartbeatTimeout = 3 * time.Second
)

// ErrFenced is returned (wrapped) by Lease.Commit when another process has
// taken the partition over: the caller must stop working on it.
var ErrFenced = errors.New("broker: the partition is owned by another process")

// NodeOptions describe the joining process.
type NodeOptions struct {
	// Name is the readable part of the node's id; empty means the host
	// name.
	Name string
	// Roles are shown in GET /v1/cluster.
	Roles []string
	// Addr is the process' HTTP address, shown in GET /v1/cluster.
	Addr string
}

// nodeRecord is the value of a node's key in the nodes bucket.
type nodeRecord struct {
	ID        string           `json:"id"`
	Name      string           `json:"name"`
	Roles     []string         `json:"roles"`
	Consumers []string         `json:"consumers"`
	Owns      map[string][]int `json:"owns"`
	Addr      string           `json:"addr,omitempty"`
	Started   int64            `json:"started"` // UTC µs
	Seen      int64            `json:"seen"`    // UTC µs
}

// ownRecord is the value of own.<consumer>.<partition>.
type ownRecord struct {
	Node  string `json:"node"` // "" when free
	Epoch uint64 `json:"epoch"`
	Since int64  `json:"since,omitempty"` // UTC µs
}

// Node is this process in the cluster. Create it with Broker.Join; Close
// it before closing the broker. Safe for concurrent use.
type Node struct {
	b       *Broker
	opts    NodeOptions
	log     *slog.Logger
	nodes   jetstream.KeyValue
	offs    jetstream.KeyValue
	started time.Time
	m       *clusterMetrics

	// beatMu orders the heartbeats (the periodic one, and those after a
	// consumer was added or stopped): a record built before another must
	// not be stored after it, or the key would say the node does not run
	// a consumer it runs, and others would take its partitions.
	beatMu sync.Mutex

	mu       sync.Mutex
	id       string // a new one after the node fenced itself
	groups   map[string]*group
	lastBeat time.Time // start of the last heartbeat that was stored
	// announced are the consumers named by the last heartbeat stored: a
	// partition of one not yet named is not taken (see rebalanceLoop).
	announced []string
	fenced    bool // fenced since the last heartbeat that was stored
	closing   bool

	ctx    context.Context // cancelled by Close: ends every run
	cancel context.CancelFunc
	kick   chan struct{}
	wg     sync.WaitGroup
}

// group is one consumer this node runs.
type group struct {
	consumer string
	topics   []string
	parts    int
	run      func(context.Context, *Lease) error
	held     map[int]*holding
	// ending are runs of partitions lost (to another process, or by
	// fencing) that have not returned yet: the partition is not taken
	// again in this process before its previous run is over, so that two
	// runs of one partition never overlap in one process.
	ending  map[int]*holding
	stopped bool // by Ownership.Stop: takes nothing more
}

// holding is a partition this node owns and the run working on it.
type holding struct {
	lease  *Lease
	cancel context.CancelFunc
	done   chan struct{} // closed once the run returned for good
}

// Join makes this process a node of the cluster of processes on the log:
// it writes its key and keeps it alive, and from then on takes and gives
// back partitions of the consumers registered with Own.
func (b *Broker) Join(ctx context.Context, opts NodeOptions) (*Node, error) {
	if b.isClosed() {
		return nil, ErrClosed
	}
	if opts.Name == "" {
		opts.Name, _ = os.Hostname()
	}
	if opts.Name == "" {
		opts.Name = "node"
	}
	nodes, err := b.kv(ctx, "nodes", nodeTTL)
	if err != nil {
		return nil, err
	}
	offs, err := b.offsets(ctx)
	if err != nil {
		return nil, err
	}
	m, err := b.clusterMetrics()
	if err != nil {
		return nil, err
	}
	n := &Node{b: b, opts: opts, log: b.log, nodes: nodes, offs: offs, started: b.now(), m: m,
		groups: map[string]*group{}, kick: make(chan struct{}, 1)}
	n.id = newNodeID(opts.Name)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.heartbeat(ctx); err != nil {
		n.log.Warn("cluster: first heartbeat failed; retrying", "node", n.id, "err", err)
	}
	n.wg.Add(2)
	go n.heartbeatLoop()
	go n.rebalanceLoop()
	n.log.Info("cluster: joined", "node", n.id, "roles", strings.Join(opts.Roles, ","))
	return n, nil
}

// newNodeID is name-<8 random characters>.
func newNodeID(name string) string {
	return escapeKey(name) + "-" + strings.ToLower(nuid.Next()[14:])
}

// ID returns the node's current id.
func (n *Node) ID() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.id
}

// Own runs run for each partition of consumer this node is assigned, until
// the returned Ownership is stopped or the node closes: run gets a Lease and
// a context that ends when the partition is taken away (the assignment
// moved, the lease was lost, Stop or Close); it should then stop softly
// (commit what it finished, with the Lease) and return. If run returns
// while the partition is still owned it is called again after a backoff.
// topics are the topics the consumer reads; partition p stands for
// partition p of each (the consumer has as many partitions as its largest
// topic); no topics make a task of one partition that commits nothing (a
// scheduler that must run in one process). One Own per consumer at a time.
func (n *Node) Own(consumer string, topics []string, run func(ctx context.Context, l *Lease) error) (*Ownership, error) {
	parts := 0
	for _, t := range topics {
		tp, ok := n.b.topics[t]
		if !ok {
			return nil, fmt.Errorf("%w %q (consumer %s)", ErrUnknownTopic, t, consumer)
		}
		parts = max(parts, len(tp.parts))
	}
	if len(topics) == 0 {
		parts = 1
	}
	return n.own(consumer, topics, parts, run)
}

// OwnPartitions is Own for a consumer of parts partitions that reads no
// topic of this log and keeps its positions itself (a link pulling another
// site's partitions in): taking a partition fences no commit record, so
// the consumer's lag stays what the consumer reports.
func (n *Node) OwnPartitions(consumer string, parts int, run func(ctx context.Context, l *Lease) error) (*Ownership, error) {
	if parts < 1 {
		return nil, fmt.Errorf("broker: consumer %s: %d partitions", consumer, parts)
	}
	return n.own(consumer, nil, parts, run)
}

func (n *Node) own(consumer string, topics []string, parts int, run func(ctx context.Context, l *Lease) error) (*Ownership, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, dup := n.groups[consumer]; dup {
		return nil, fmt.Errorf("broker: consumer %s is owned already", consumer)
	}
	g := &group{consumer: consumer, topics: slices.Clone(topics), parts: parts, run: run, held: map[int]*holding{}, ending: map[int]*holding{}}
	n.groups[consumer] = g
	n.poke()
	return &Ownership{n: n, g: g}, nil
}

// Ownership is a consumer run by Node.Own.
type Ownership struct {
	n *Node
	g *group
}

// Stop ends the runs of the consumer's partitions (softly: each run's
// context ends and Stop waits for it to return), gives the partitions
// back and stops taking any. It is safe to call more than once.
func (o *Ownership) Stop() {
	n := o.n
	n.mu.Lock()
	o.g.stopped = true
	var all []*holding
	for _, h := range o.g.held {
		all = append(all, h)
	}
	for _, h := range o.g.ending {
		all = append(all, h)
	}
	n.mu.Unlock()
	for _, h := range all {
		h.cancel()
	}
	for _, h := range all {
		<-h.done
	}
	// The consumer stays in the node's record until its runs are over:
	// others take a partition named by a live node only once that node no
	// longer runs the consumer.
	n.mu.Lock()
	if n.groups[o.g.consumer] == o.g {
		delete(n.groups, o.g.consumer)
	}
	n.mu.Unlock()
	// Say at once that this node no longer runs the consumer, so that the
	// others take its partitions without waiting for the next heartbeat.
	ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
	defer cancel()
	if err := n.heartbeat(ctx); err != nil && n.ctx.Err() == nil {
		n.log.Debug("cluster: heartbeat after stopping a consumer", "consumer", o.g.consumer, "err", err)
	}
}

func (n *Node) poke() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// Close gives back every partition this node owns (each run stops softly
// first) and removes the node's key, so that others take over at once.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		return nil
	}
	n.closing = true
	var owned []*Ownership
	for _, g := range n.groups {
		owned = append(owned, &Ownership{n: n, g: g})
	}
	n.mu.Unlock()
	for _, o := range owned {
		o.Stop()
	}
	n.cancel()
	n.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.nodes.Delete(ctx, escapeKey(n.ID())); err != nil {
		n.log.Warn("cluster: removing the node's key", "node", n.ID(), "err", err)
	}
	n.log.Info("cluster: left", "node", n.ID())
	return nil
}

func (n *Node) heartbeatLoop() {
	defer n.wg.Done()
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		// A write may take seconds on a loaded cluster and still land in
		// time: the key lives nodeTTL from when it is stored, and the
		// fence counts from the write's start. Giving up after a second
		// made loaded nodes fence themselves for nothing.
		ctx, cancel := context.WithTimeout(n.ctx, heartbeatTimeout)
		err := n.heartbeat(ctx)
		cancel()
		if err == nil {
			continue
		}
		n.mu.Lock()
		stale := time.Since(n.lastBeat) > fenceAfter && !n.fenced
		n.mu.Unlock()
		n.log.Warn("cluster: heartbeat failed", "node", n.ID(), "err", err, "fencing", stale)
		if stale {
			n.fence()
		}
	}
}

// heartbeat writes the node's key with what it owns now.
func (n *Node) heartbeat(ctx context.Context) error {
	n.beatMu.Lock()
	defer n.beatMu.Unlock()
	start := time.Now()
	n.mu.Lock()
	rec := nodeRecord{ID: n.id, Name: n.opts.Name, Roles: n.opts.Roles, Owns: map[string][]int{}, Addr: n.opts.Addr,
		Started: n.started.UnixMicro(), Seen: n.b.now().UnixMicro()}
	for c, g := range n.groups {
		rec.Consumers = append(rec.Consumers, c)
		parts := make([]int, 0, len(g.held))
		for p := range g.held {
			parts = append(parts, p)
		}
		slices.Sort(parts)
		rec.Owns[c] = parts
	}
	slices.Sort(rec.Consumers)
	id := n.id
	n.mu.Unlock()
	v, _ := json.Marshal(rec)
	if _, err := n.nodes.Put(ctx, escapeKey(id), v); err != nil {
		return unavailable(err)
	}
	n.mu.Lock()
	if n.id == id {
		n.lastBeat, n.fenced, n.announced = start, false, rec.Consumers
	}
	n.mu.Unlock()
	return nil
}

// fence stops every run of this node: it could not say it is alive, so
// others may take its partitions at any moment. It comes back as a new
// node when the log answers again.
func (n *Node) fence() {
	n.mu.Lock()
	old := n.id
	n.id, n.fenced = newNodeID(n.opts.Name), true
	var lost []*holding
	for _, g := range n.groups {
		for p, h := range g.held {
			lost = append(lost, h)
			delete(g.held, p)
			g.ending[p] = h
			n.m.moves.WithLabelValues(g.consumer, "lost").Inc()
		}
		n.m.owned.WithLabelValues(g.consumer).Set(0)
	}
	n.mu.Unlock()
	n.log.Error("cluster: no heartbeat stored for too long; stopped every partition this node owned", "node", old, "new_node", n.ID(),
		"partitions", len(lost))
	for _, h := range lost {
		h.lease.markLost() // stops the run
	}
}

func (n *Node) rebalanceLoop() {
	defer n.wg.Done()
	t := time.NewTicker(rebalanceEvery)
	defer t.Stop()
	kicked := false
	for {
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		if kicked || n.unannounced() {
			// A consumer was added or stopped: tell the others now, so
			// that they count this node in (or out) at their next look,
			// and before taking any partition of it (others that see it
			// own a partition of a consumer its key does not name take
			// that partition from it).
			if err := n.heartbeat(ctx); err != nil && n.ctx.Err() == nil {
				n.log.Debug("cluster: heartbeat", "node", n.ID(), "err", err)
			}
		}
		if err := n.rebalance(ctx); err != nil && n.ctx.Err() == nil {
			n.log.Warn("cluster: rebalance", "node", n.ID(), "err", err)
		}
		cancel()
		kicked = false
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.kick:
			kicked = true
		}
	}
}

// unannounced reports whether this node runs a consumer that its last
// stored heartbeat does not name.
func (n *Node) unannounced() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for c := range n.groups {
		if !slices.Contains(n.announced, c) {
			return true
		}
	}
	return false
}

// assign returns the index in members (sorted ids) of the owner of
// partition p of consumer: partitions are dealt round-robin, starting at a
// member that depends on the consumer, so that consumers of few partitions
// spread over the nodes.
func assign(members []string, consumer string, p int) int {
	h := fnv.New32a()
	h.Write([]byte(consumer))
	return (p + int(h.Sum32()%1024)) % len(members)
}

// rebalance takes the partitions assigned to this node that are free, and
// starts giving back those assigned elsewhere.
func (n *Node) rebalance(ctx context.Context) error {
	// Ownership first, membership second: a node writes its key naming
	// the consumer before it takes any partition of it, so every owner
	// read here is in the membership read after. Read the other way round,
	// a node that joined (or started a consumer) between the two reads
	// showed as an owner that is gone or runs something else, and its
	// partitions were taken from it at once, only to move back.
	owners, err := n.owners(ctx)
	if err != nil {
		return err
	}
	live, err := n.liveNodes(ctx)
	if err != nil {
		return err
	}
	n.m.nodes.Set(float64(len(live)))
	n.mu.Lock()
	if n.closing || time.Since(n.lastBeat) > fenceAfter {
		n.mu.Unlock()
		return nil
	}
	me := n.id
	type want struct {
		g *group
		p int
	}
	var take, free []want
	for _, g := range n.groups {
		if g.stopped {
			continue
		}
		var members []string
		for id, rec := range live {
			if slices.Contains(rec.Consumers, g.consumer) {
				members = append(members, id)
			}
		}
		if !slices.Contains(members, me) {
			members = append(members, me) // its first heartbeat may not be stored yet
		}
		slices.Sort(members)
		announced := slices.Contains(n.announced, g.consumer)
		for p := range g.parts {
			mine := members[assign(members, g.consumer, p)] == me
			h := g.held[p]
			switch {
			case mine && h == nil && g.ending[p] == nil && announced:
				take = append(take, want{g, p})
			case !mine && h != nil:
				h.cancel() // its run stops softly, then the partition is given back
			}
			o, ok := owners[ownKey(g.consumer, p)]
			switch {
			case h != nil && ok && (o.rec.Node != me || o.rec.Epoch != h.lease.epoch):
				n.loseLocked(g, p, h, fmt.Sprintf("own record names %q epoch %d", o.rec.Node, o.rec.Epoch))
			case h == nil && g.ending[p] == nil && !mine && ok && o.rec.Node == me:
				// Named as the owner of a partition this node does not
				// run: giving it back failed (the log did not answer, or
				// a replica served a stale record). Others wait for it.
				free = append(free, want{g, p})
			}
		}
	}
	n.mu.Unlock()
	for _, w := range free {
		o := owners[ownKey(w.g.consumer, w.p)]
		v, _ := json.Marshal(ownRecord{Epoch: o.rec.Epoch})
		if _, err := n.offs.Update(ctx, ownKey(w.g.consumer, w.p), v, o.rev); err != nil {
			n.log.Info("cluster: giving back a partition this node no longer runs; trying again", "consumer", w.g.consumer, "partition", w.p, "err", err)
		} else {
			n.log.Info("cluster: gave back a partition this node no longer runs", "consumer", w.g.consumer, "partition", w.p, "epoch", o.rec.Epoch)
		}
	}
	// The partitions are taken side by side: each is a few compare-and-sets
	// on replicated keys, and a process that lost a node takes them all at
	// once.
	var wg sync.WaitGroup
	for _, w := range take {
		o := owners[ownKey(w.g.consumer, w.p)]
		if o.rec.Node != "" && o.rec.Node != me {
			if rec, alive := live[o.rec.Node]; alive && slices.Contains(rec.Consumers, w.g.consumer) && !n.replaces(rec) {
				continue // still owned: its owner gives it back first
			}
		}
		wg.Go(func() {
			if err := n.acquire(ctx, w.g, w.p, o); err != nil {
				n.log.Info("cluster: partition not taken; trying again", "consumer", w.g.consumer, "partition", w.p, "err", err)
			}
		})
	}
	wg.Wait()
	return nil
}

// replaces reports whether rec is an earlier run of this process: the same
// name, started before. A process restarted after a kill -9 takes its
// partitions back at once instead of waiting for its old key to expire.
// (Two live processes given one name would take partitions from each
// other; names must be unique, as the node name of a cluster is.)
func (n *Node) replaces(rec nodeRecord) bool {
	return rec.Name == n.opts.Name && rec.Started < n.started.UnixMicro()
}

// loseLocked stops a run whose lease another process took; n.mu is held.
func (n *Node) loseLocked(g *group, p int, h *holding, why string) {
	delete(g.held, p)
	g.ending[p] = h
	n.m.moves.WithLabelValues(g.consumer, "lost").Inc()
	n.m.owned.WithLabelValues(g.consumer).Set(float64(len(g.held)))
	n.log.Warn("cluster: partition lost to another process", "consumer", g.consumer, "partition", p, "why", why)
	h.lease.markLost() // stops the run
}

// liveNodes reads every node key: the live processes.
func (n *Node) liveNodes(ctx context.Context) (map[string]nodeRecord, error) {
	out := map[string]nodeRecord{}
	err := snapshot(ctx, n.nodes, ">", func(key string, v []byte, _ uint64) {
		var rec nodeRecord
		if json.Unmarshal(v, &rec) == nil && rec.ID != "" {
			out[rec.ID] = rec
		}
	})
	return out, err
}

type ownEntry struct {
	rec ownRecord
	rev uint64
}

// owners reads every own record.
func (n *Node) owners(ctx context.Context) (map[string]ownEntry, error) {
	out := map[string]ownEntry{}
	err := snapshot(ctx, n.offs, "own.>", func(key string, v []byte, rev uint64) {
		var rec ownRecord
		if json.Unmarshal(v, &rec) == nil {
			out[key] = ownEntry{rec, rev}
		}
	})
	return out, err
}

// snapshot calls fn for every current key of kv matching filter.
func snapshot(ctx context.Context, kv jetstream.KeyValue, filter string, fn func(key string, v []byte, rev uint64)) error {
	w, err := kv.WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("broker: read %s: %w", filter, unavailable(err))
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker: read %s: %w", filter, unavailable(ctx.Err()))
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("%w: read %s: watch ended", ErrUnavailable, filter)
			}
			if e == nil {
				return nil
			}
			fn(e.Key(), e.Value(), e.Revision())
		}
	}
}

func ownKey(consumer string, p int) string {
	return "own." + escapeKey(consumer) + "." + strconv.Itoa(p)
}

// acquire takes partition p of g, whose own record was seen as o, and
// starts its run.
func (n *Node) acquire(ctx context.Context, g *group, p int, o ownEntry) error {
	me := n.ID()
	rec := ownRecord{Node: me, Epoch: o.rec.Epoch + 1, Since: n.b.now().UnixMicro()}
	v, _ := json.Marshal(rec)
	var err error
	if o.rev == 0 {
		_, err = n.offs.Create(ctx, ownKey(g.consumer, p), v)
	} else {
		_, err = n.offs.Update(ctx, ownKey(g.consumer, p), v, o.rev)
	}
	if err != nil {
		return fmt.Errorf("take %s: %w", ownKey(g.consumer, p), unavailable(err))
	}
	rctx, cancel := context.WithCancel(n.ctx)
	l := &Lease{n: n, node: me, consumer: g.consumer, part: p, epoch: rec.Epoch, commits: map[string]*leaseCommit{}, lost: make(chan struct{}), stop: cancel}
	for _, t := range g.topics {
		if p >= len(n.b.topics[t].parts) {
			continue
		}
		if err := l.fence(ctx, t); err != nil {
			n.release(g, p, l)
			return err
		}
	}
	n.mu.Lock()
	if n.closing || n.id != me || g.held[p] != nil || g.ending[p] != nil || g.stopped {
		n.mu.Unlock()
		n.release(g, p, l)
		return errors.New("the node is closing or fenced, or the consumer stopped")
	}
	h := &holding{lease: l, cancel: cancel, done: make(chan struct{})}
	g.held[p] = h
	n.m.moves.WithLabelValues(g.consumer, "acquired").Inc()
	n.m.owned.WithLabelValues(g.consumer).Set(float64(len(g.held)))
	n.mu.Unlock()
	n.log.Info("cluster: partition taken", "consumer", g.consumer, "partition", p, "epoch", rec.Epoch, "from", o.rec.Node)
	n.wg.Add(1)
	go n.hold(rctx, g, p, h)
	n.poke() // tell the others (GET /v1/cluster) without waiting for the next heartbeat
	return nil
}

// hold runs g's run for partition p until the partition is taken away,
// then gives it back (unless it was lost).
func (n *Node) hold(ctx context.Context, g *group, p int, h *holding) {
	defer n.wg.Done()
	defer close(h.done)
	// 1 s doubling to 30 s, without jitter: a run that fails again and
	// again (its database down) is not called in a tight loop.
	backoff := retry.Backoff{Base: time.Second, Cap: 30 * time.Second}
	for attempt := 1; ; attempt++ {
		err := g.run(ctx, h.lease)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			n.log.Warn("cluster: run of an owned partition failed; running it again", "consumer", g.consumer, "partition", p, "err", err, "in", backoff.Delay(attempt))
		}
		if backoff.Wait(ctx, attempt) != nil {
			break
		}
	}
	n.mu.Lock()
	still := g.held[p] == h
	if still {
		delete(g.held, p)
		n.m.owned.WithLabelValues(g.consumer).Set(float64(len(g.held)))
	}
	if g.ending[p] == h {
		delete(g.ending, p)
	}
	n.mu.Unlock()
	if still && h.lease.isLost() {
		// A commit found the partition taken: the run stopped, and the
		// next rebalance takes the partition again only if it is free.
		n.m.moves.WithLabelValues(g.consumer, "lost").Inc()
		n.log.Warn("cluster: partition lost to another process (a commit was fenced)", "consumer", g.consumer, "partition", p)
		n.poke()
	}
	if still && !h.lease.isLost() {
		n.release(g, p, h.lease)
		n.m.moves.WithLabelValues(g.consumer, "released").Inc()
		n.log.Info("cluster: partition given back", "consumer", g.consumer, "partition", p)
		n.poke()
	}
}

// release frees partition p of g if l still owns it.
func (n *Node) release(g *group, p int, l *Lease) {
	l.markLost()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := n.offs.Get(ctx, ownKey(g.consumer, p))
	if err != nil {
		n.log.Warn("cluster: giving a partition back", "consumer", g.consumer, "partition", p, "err", err)
		return
	}
	var rec ownRecord
	if json.Unmarshal(e.Value(), &rec) != nil || rec.Node != l.node || rec.Epoch != l.epoch {
		return
	}
	v, _ := json.Marshal(ownRecord{Epoch: l.epoch})
	if _, err := n.offs.Update(ctx, ownKey(g.consumer, p), v, e.Revision()); err != nil {
		n.log.Warn("cluster: giving a partition back", "consumer", g.consumer, "partition", p, "err", err)
	}
}

// Cluster lists the live processes of the pipeline on this log, from
// their keys in the nodes bucket; any process can answer it, joined or not.
func (b *Broker) Cluster(ctx context.Context) (api.Cluster, error) {
	if b.isClosed() {
		return api.Cluster{}, ErrClosed
	}
	kv, err := b.kv(ctx, "nodes", nodeTTL)
	if err != nil {
		return api.Cluster{}, err
	}
	out := api.Cluster{Nodes: []api.ClusterNode{}}
	err = snapshot(ctx, kv, ">", func(_ string, v []byte, _ uint64) {
		var rec nodeRecord
		if json.Unmarshal(v, &rec) != nil || rec.ID == "" {
			return
		}
		cn := api.ClusterNode{ID: rec.ID, Roles: rec.Roles, Owns: rec.Owns, Addr: rec.Addr,
			Seen: time.UnixMicro(rec.Seen).UTC(), Started: time.UnixMicro(rec.Started).UTC()}
		if cn.Roles == nil {
			cn.Roles = []string{}
		}
		if cn.Owns == nil {
			cn.Owns = map[string][]int{}
		}
		out.Nodes = append(out.Nodes, cn)
	})
	if err != nil {
		return api.Cluster{}, err
	}
	slices.SortFunc(out.Nodes, func(a, b api.ClusterNode) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// clusterMetrics are the metrics of ownership, registered once per broker.
type clusterMetrics struct {
	moves *prometheus.CounterVec
	owned *prometheus.GaugeVec
	nodes prometheus.Gauge
}

func (b *Broker) clusterMetrics() (*clusterMetrics, error) {
	b.kvMu.Lock()
	defer b.kvMu.Unlock()
	if b.cm != nil {
		return b.cm, nil
	}
	m := &clusterMetrics{
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_cluster_ownership_moves_total",
			Help: "Partitions this process took (acquired), gave back (released) or lost to another process or by fencing itself (lost), per consumer.",
		}, []string{"consumer", "change"}),
		owned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambdaflow_cluster_owned_partitions",
			Help: "Partitions of the consumer this process owns now.",
		}, []string{"consumer"}),
		nodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lambdaflow_cluster_nodes",
			Help: "Live processes of the pipeline on the log, as this process last saw them.",
		}),
	}
	for _, c := range []prometheus.Collector{m.moves, m.owned, m.nodes} {
		if err := b.metrics.reg.Register(c); err != nil {
			return nil, fmt.Errorf("broker: register metrics: %w", err)
		}
		b.metrics.collectors = append(b.metrics.collectors, c)
	}
	b.cm = m
	return m, nil
}
