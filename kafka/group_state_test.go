package kafka

import "testing"

// TestGroupStateMachine walks the classic protocol's states on the stored
// record alone: joins, the barrier, the protocol choice, session expiry
// and the rebalance deadline.
func TestGroupStateMachine(t *testing.T) {
	const sec = int64(1_000_000)
	m := func(id string, protos ...string) *member {
		var ps []protocol
		for _, p := range protos {
			ps = append(ps, protocol{Name: p})
		}
		return &member{ID: id, Session: 10_000, Rebalance: 30_000, Protocols: ps, Joined: true}
	}
	g := newGroup()
	g.Members = []*member{m("a", "cooperative-sticky", "range")}
	g.startRebalance(0)
	if g.State != statePreparing || g.Deadline != 30*sec {
		t.Fatalf("after the first join: %s, deadline %d", g.State, g.Deadline)
	}
	g.Members[0].Joined = true
	if !g.allJoined() {
		t.Fatal("the only member joined, yet not all joined")
	}
	g.completeJoin(0)
	if g.State != stateCompleting || g.Generation != 1 || g.Leader != "a" || g.Protocol != "cooperative-sticky" {
		t.Fatalf("completed: %+v", g)
	}
	g.State = stateStable

	// b supports only range: the common protocol becomes range.
	if !g.compatible("b", []protocol{{Name: "range"}}) || g.compatible("c", []protocol{{Name: "roundrobin"}}) {
		t.Fatal("compatibility")
	}
	g.Members = append(g.Members, m("b", "range"))
	g.startRebalance(sec)
	g.member("b").Joined = true
	if g.allJoined() {
		t.Fatal("a has not rejoined yet")
	}
	// a never rejoins and stops heartbeating: at its session's end it is
	// dropped and the join completes with b alone.
	g.member("a").Seen = sec
	if g.expire(5 * sec) {
		t.Fatal("changed before a's session ran out")
	}
	if w := g.wake(); w != 11*sec+1 {
		t.Fatalf("wake at %d, want a's session end", w)
	}
	if !g.expire(12 * sec) {
		t.Fatal("a's expiry changed nothing")
	}
	if g.State != stateCompleting || g.Generation != 2 || len(g.Members) != 1 || g.Leader != "b" || g.Protocol != "range" {
		t.Fatalf("after a expired: %+v", g)
	}
	// Everyone leaving empties the group with a new generation.
	g.remove("b")
	g.completeJoin(13 * sec)
	if g.State != stateEmpty || g.Generation != 3 || g.Leader != "" {
		t.Fatalf("empty: %+v", g)
	}
}
