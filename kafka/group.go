package kafka

import (
	"slices"
)

// Group states, named as Kafka names them (DescribeGroups, ListGroups).
const (
	stateEmpty      = "Empty"
	statePreparing  = "PreparingRebalance"
	stateCompleting = "CompletingRebalance"
	stateStable     = "Stable"
	stateDead       = "Dead" // never stored: a group that does not exist
)

// groupState is one consumer group as stored (JSON) in the group-state
// bucket. Every change is a pure function of the state and the clock
// (the methods below), applied with compare-and-set, so that any process
// may coordinate any group: the stored state is the only truth.
//
// The protocol is Kafka's classic group protocol: members join (JoinGroup),
// the coordinator waits until every member has rejoined or the rebalance
// timeout passed, elects a leader and picks a protocol (assignor) all
// members support; the leader computes the assignment on its side and
// sends it (SyncGroup), the coordinator relays each member its part.
// Members that stop heartbeating for their session timeout are removed,
// which starts a rebalance.
type groupState struct {
	State        string    `json:"state"`
	Generation   int32     `json:"generation"`
	ProtocolType string    `json:"protocol_type,omitempty"`
	Protocol     string    `json:"protocol,omitempty"`
	Leader       string    `json:"leader,omitempty"`
	Deadline     int64     `json:"rebalance_deadline,omitempty"` // µs; while PreparingRebalance
	Members      []*member `json:"members,omitempty"`
}

type member struct {
	ID         string     `json:"id"`
	InstanceID string     `json:"instance_id,omitempty"`
	ClientID   string     `json:"client_id,omitempty"`
	ClientHost string     `json:"client_host,omitempty"`
	Session    int32      `json:"session_ms"`
	Rebalance  int32      `json:"rebalance_ms"`
	Protocols  []protocol `json:"protocols"`
	// Joined: the member has sent JoinGroup in the current rebalance.
	Joined     bool   `json:"joined,omitempty"`
	Assignment []byte `json:"assignment,omitempty"`
	Seen       int64  `json:"seen"` // µs, last sign of life
}

type protocol struct {
	Name     string `json:"name"`
	Metadata []byte `json:"metadata,omitempty"`
}

func newGroup() *groupState { return &groupState{State: stateEmpty} }

func (g *groupState) member(id string) *member {
	for _, m := range g.Members {
		if m.ID == id {
			return m
		}
	}
	return nil
}

func (g *groupState) remove(id string) bool {
	n := len(g.Members)
	g.Members = slices.DeleteFunc(g.Members, func(m *member) bool { return m.ID == id })
	return len(g.Members) != n
}

// expire applies the clock: members silent for their session timeout are
// removed (a rebalance starts), and a rebalance past its deadline completes
// without the members that did not rejoin. It reports whether g changed.
func (g *groupState) expire(now int64) bool {
	changed := false
	silent := func(m *member) bool { return m.Seen+int64(m.Session)*1000 < now }
	switch g.State {
	case stateStable, stateCompleting:
		n := len(g.Members)
		g.Members = slices.DeleteFunc(g.Members, silent)
		if len(g.Members) != n {
			g.startRebalance(now)
			changed = true
		}
	case statePreparing:
		// Members that have not rejoined still heartbeat; those that stop
		// are dropped without waiting for the whole rebalance timeout.
		n := len(g.Members)
		g.Members = slices.DeleteFunc(g.Members, func(m *member) bool { return !m.Joined && silent(m) })
		changed = len(g.Members) != n
		if now >= g.Deadline {
			g.Members = slices.DeleteFunc(g.Members, func(m *member) bool { return !m.Joined })
			g.completeJoin(now)
			return true
		}
		if g.allJoined() {
			g.completeJoin(now)
			return true
		}
	}
	return changed
}

// wake returns when (µs) the clock will next change g through expire: a
// session running out or the rebalance deadline; 0 if never. Members
// waiting for a join to complete wait until then at most, so that a
// silent member is dropped in time even when nothing else happens.
func (g *groupState) wake() int64 {
	var t int64
	earliest := func(v int64) {
		if t == 0 || v < t {
			t = v
		}
	}
	for _, m := range g.Members {
		if g.State != statePreparing || !m.Joined {
			earliest(m.Seen + int64(m.Session)*1000 + 1)
		}
	}
	if g.State == statePreparing {
		earliest(g.Deadline)
	}
	return t
}

// startRebalance asks every member to rejoin.
func (g *groupState) startRebalance(now int64) {
	if len(g.Members) == 0 {
		g.completeJoin(now)
		return
	}
	g.State = statePreparing
	var longest int32
	for _, m := range g.Members {
		m.Joined, m.Assignment = false, nil
		longest = max(longest, m.Rebalance)
	}
	g.Deadline = now + int64(longest)*1000
}

func (g *groupState) allJoined() bool {
	if len(g.Members) == 0 {
		return false
	}
	for _, m := range g.Members {
		if !m.Joined {
			return false
		}
	}
	return true
}

// completeJoin ends the join phase: a new generation with the members that
// joined, a leader and a protocol, waiting for the leader's assignment.
func (g *groupState) completeJoin(now int64) {
	g.Generation++
	g.Deadline = 0
	if len(g.Members) == 0 {
		g.State, g.Protocol, g.Leader = stateEmpty, "", ""
		return
	}
	g.State = stateCompleting
	if g.member(g.Leader) == nil {
		g.Leader = g.Members[0].ID
	}
	g.Protocol = g.commonProtocol()
	for _, m := range g.Members {
		m.Joined, m.Assignment, m.Seen = false, nil, now
	}
}

// commonProtocol is the leader's most preferred protocol that every member
// supports ("" if none; JoinGroup refuses members that would cause that).
func (g *groupState) commonProtocol() string {
	lead := g.member(g.Leader)
	if lead == nil {
		return ""
	}
	for _, p := range lead.Protocols {
		all := true
		for _, m := range g.Members {
			all = all && m.supports(p.Name)
		}
		if all {
			return p.Name
		}
	}
	return ""
}

func (m *member) supports(name string) bool {
	return slices.ContainsFunc(m.Protocols, func(p protocol) bool { return p.Name == name })
}

func (m *member) metadata(name string) []byte {
	for _, p := range m.Protocols {
		if p.Name == name {
			return p.Metadata
		}
	}
	return nil
}

// compatible reports whether a member with protocols ps may join: it shares
// a protocol with every current member.
func (g *groupState) compatible(self string, ps []protocol) bool {
	for _, p := range ps {
		all := true
		for _, m := range g.Members {
			if m.ID != self {
				all = all && m.supports(p.Name)
			}
		}
		if all {
			return true
		}
	}
	return false
}
