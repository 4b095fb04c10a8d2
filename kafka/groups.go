package kafka

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lambdaflow/lambdaflow/groups"
)

// codeError aborts a group update with a Kafka error code.
type codeError int16

func (e codeError) Error() string { return kerr.ErrorForCode(int16(e)).Error() }

// errorCode turns an error of a group operation into a Kafka error code:
// the log's unavailability is COORDINATOR_NOT_AVAILABLE, which clients
// retry.
func (c *conn) errorCode(op string, err error) int16 {
	var ce codeError
	if errors.As(err, &ce) {
		return int16(ce)
	}
	if errors.Is(err, context.Canceled) {
		return kerr.RebalanceInProgress.Code
	}
	c.s.logger.Warn("kafka: group operation failed", "op", op, "client", c.clientID, "err", err)
	return kerr.CoordinatorNotAvailable.Code
}

func (c *conn) joinGroup(ctx context.Context, r *kmsg.JoinGroupRequest) kmsg.Response {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Generation = -1
	fail := func(code int16) kmsg.Response {
		resp.ErrorCode = code
		return resp
	}
	switch {
	case r.Group == "":
		return fail(kerr.InvalidGroupID.Code)
	case !c.allowedGroup():
		return fail(kerr.GroupAuthorizationFailed.Code)
	case r.SessionTimeoutMillis < minSession || r.SessionTimeoutMillis > maxSession:
		return fail(kerr.InvalidSessionTimeout.Code)
	case r.ProtocolType == "" || len(r.Protocols) == 0:
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	rebalance := r.RebalanceTimeoutMillis
	if r.Version == 0 || rebalance <= 0 {
		rebalance = r.SessionTimeoutMillis
	}
	id := r.MemberID
	if id == "" {
		id = groups.NewMemberID(c.clientID)
		if r.Version >= 4 {
			// KIP-394: the client joins again with this id, so that a
			// retried first join does not leave a ghost member behind.
			resp.MemberID = id
			return fail(kerr.MemberIDRequired.Code)
		}
	}
	resp.MemberID = id
	protos := make([]protocol, len(r.Protocols))
	for i, p := range r.Protocols {
		protos[i] = protocol{Name: p.Name, Metadata: p.Metadata}
	}
	var instance string
	if r.InstanceID != nil {
		instance = *r.InstanceID
	}

	target := int32(0) // the generation that includes this member
	g, rev, err := c.s.groups.update(ctx, r.Group, func(g *groupState, now int64) (bool, error) {
		if len(g.Members) > 0 && g.ProtocolType != r.ProtocolType {
			return false, codeError(kerr.InconsistentGroupProtocol.Code)
		}
		if !g.compatible(id, protos) {
			return false, codeError(kerr.InconsistentGroupProtocol.Code)
		}
		if instance != "" {
			// A static member that comes back replaces its old incarnation.
			for _, m := range g.Members {
				if m.InstanceID == instance && m.ID != id {
					g.remove(m.ID)
					break
				}
			}
		}
		m := g.member(id)
		if m == nil {
			m = &member{ID: id}
			g.Members = append(g.Members, m)
		}
		m.InstanceID, m.ClientID, m.ClientHost = instance, c.clientID, c.remote
		m.Session, m.Rebalance, m.Protocols = r.SessionTimeoutMillis, rebalance, protos
		m.Seen = now
		g.ProtocolType = r.ProtocolType
		if g.State != statePreparing {
			g.startRebalance(now)
		}
		m.Joined = true
		target = g.Generation + 1
		if g.allJoined() {
			g.completeJoin(now)
		}
		return true, nil
	})
	if err != nil {
		return fail(c.errorCode("JoinGroup", err))
	}
	// Wait until the join phase completes with this member in it.
	for {
		m := g.member(id)
		switch {
		case m == nil:
			return fail(kerr.UnknownMemberID.Code)
		case g.State == stateCompleting || g.State == stateStable:
			if g.Generation >= target {
				return c.joined(resp, g, id)
			}
		}
		if g.State == statePreparing && !m.Joined {
			// A newer rebalance started before this join was answered:
			// this member is still joining, so it takes part in it.
			g, rev, err = c.s.groups.update(ctx, r.Group, func(g *groupState, now int64) (bool, error) {
				m := g.member(id)
				if m == nil || g.State != statePreparing || m.Joined {
					return false, nil
				}
				m.Joined, m.Seen = true, now
				target = g.Generation + 1
				if g.allJoined() {
					g.completeJoin(now)
				}
				return true, nil
			})
			if err != nil {
				return fail(c.errorCode("JoinGroup", err))
			}
			continue
		}
		until := time.Now().Add(time.Duration(rebalance) * time.Millisecond)
		if w := g.wake(); w != 0 {
			until = minTime(until, c.s.wallClock(w))
		}
		if err := c.s.groups.wait(ctx, r.Group, rev, until); err != nil {
			return fail(c.errorCode("JoinGroup", err))
		}
		// Reading through update applies the clock: a rebalance past its
		// deadline completes here, whichever member notices first.
		g, rev, err = c.s.groups.read(ctx, r.Group)
		if err != nil {
			return fail(c.errorCode("JoinGroup", err))
		}
	}
}

// joined fills a successful JoinGroup answer; the leader gets every member
// with its metadata for the chosen protocol.
func (c *conn) joined(resp *kmsg.JoinGroupResponse, g *groupState, id string) kmsg.Response {
	resp.Generation = g.Generation
	pt, proto := g.ProtocolType, g.Protocol
	resp.ProtocolType, resp.Protocol = &pt, &proto
	resp.LeaderID = g.Leader
	if id == g.Leader {
		for _, m := range g.Members {
			rm := kmsg.NewJoinGroupResponseMember()
			rm.MemberID = m.ID
			if m.InstanceID != "" {
				inst := m.InstanceID
				rm.InstanceID = &inst
			}
			rm.ProtocolMetadata = m.metadata(g.Protocol)
			resp.Members = append(resp.Members, rm)
		}
	}
	return resp
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// wallClock converts a time of the group clock (Options.Now, µs) into
// the real time to wait until, plus a millisecond so that the clock has
// passed it.
func (s *Server) wallClock(us int64) time.Time {
	return time.Now().Add(time.UnixMicro(us).Sub(s.now()) + time.Millisecond)
}

// checkMember is the common check of SyncGroup, Heartbeat and OffsetCommit.
func checkMember(g *groupState, id string, gen int32) error {
	if g.member(id) == nil {
		return codeError(kerr.UnknownMemberID.Code)
	}
	if gen != g.Generation {
		return codeError(kerr.IllegalGeneration.Code)
	}
	return nil
}

func (c *conn) syncGroup(ctx context.Context, r *kmsg.SyncGroupRequest) kmsg.Response {
	resp := kmsg.NewPtrSyncGroupResponse()
	fail := func(code int16) kmsg.Response {
		resp.ErrorCode = code
		return resp
	}
	if !c.allowedGroup() {
		return fail(kerr.GroupAuthorizationFailed.Code)
	}
	g, rev, err := c.s.groups.update(ctx, r.Group, func(g *groupState, now int64) (bool, error) {
		if err := checkMember(g, r.MemberID, r.Generation); err != nil {
			return false, err
		}
		if g.State == statePreparing {
			return false, codeError(kerr.RebalanceInProgress.Code)
		}
		if r.ProtocolType != nil && *r.ProtocolType != g.ProtocolType || r.Protocol != nil && *r.Protocol != g.Protocol {
			return false, codeError(kerr.InconsistentGroupProtocol.Code)
		}
		g.member(r.MemberID).Seen = now
		if g.State == stateCompleting && r.MemberID == g.Leader {
			for _, a := range r.GroupAssignment {
				if m := g.member(a.MemberID); m != nil {
					m.Assignment = a.MemberAssignment
				}
			}
			g.State = stateStable
		}
		return true, nil
	})
	if err != nil {
		return fail(c.errorCode("SyncGroup", err))
	}
	// A follower waits for the leader's assignment.
	var session time.Duration
	if m := g.member(r.MemberID); m != nil {
		session = time.Duration(m.Session) * time.Millisecond
	}
	until := time.Now().Add(session)
	for {
		m := g.member(r.MemberID)
		switch {
		case m == nil:
			return fail(kerr.UnknownMemberID.Code)
		case g.Generation != r.Generation || g.State == statePreparing:
			return fail(kerr.RebalanceInProgress.Code)
		case g.State == stateStable:
			pt, proto := g.ProtocolType, g.Protocol
			resp.ProtocolType, resp.Protocol = &pt, &proto
			resp.MemberAssignment = m.Assignment
			return resp
		}
		if !time.Now().Before(until) {
			return fail(kerr.RebalanceInProgress.Code)
		}
		wait := until
		if w := g.wake(); w != 0 {
			wait = minTime(wait, c.s.wallClock(w))
		}
		if err := c.s.groups.wait(ctx, r.Group, rev, wait); err != nil {
			return fail(c.errorCode("SyncGroup", err))
		}
		g, rev, err = c.s.groups.read(ctx, r.Group)
		if err != nil {
			return fail(c.errorCode("SyncGroup", err))
		}
	}
}

// heartbeatWrite is how stale a member's last sign of life must be before a
// heartbeat writes it: sessions are seconds long, so writing at most every
// quarter second keeps expiry exact enough with less churn.
const heartbeatWrite = 250 * time.Millisecond

func (c *conn) heartbeat(ctx context.Context, r *kmsg.HeartbeatRequest) kmsg.Response {
	resp := kmsg.NewPtrHeartbeatResponse()
	if !c.allowedGroup() {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp
	}
	_, _, err := c.s.groups.update(ctx, r.Group, func(g *groupState, now int64) (bool, error) {
		if err := checkMember(g, r.MemberID, r.Generation); err != nil {
			return false, err
		}
		m := g.member(r.MemberID)
		stale := now-m.Seen >= heartbeatWrite.Microseconds()
		if stale {
			m.Seen = now
		}
		if g.State == statePreparing {
			return stale, codeError(kerr.RebalanceInProgress.Code)
		}
		return stale, nil
	})
	if err != nil {
		resp.ErrorCode = c.errorCode("Heartbeat", err)
	}
	return resp
}

func (c *conn) leaveGroup(ctx context.Context, r *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := kmsg.NewPtrLeaveGroupResponse()
	if !c.allowedGroup() {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp
	}
	leaving := r.Members
	if r.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: r.MemberID}}
	}
	codes := make([]int16, len(leaving))
	_, _, err := c.s.groups.update(ctx, r.Group, func(g *groupState, now int64) (bool, error) {
		removed := false
		for i, l := range leaving {
			id := l.MemberID
			if id == "" && l.InstanceID != nil {
				for _, m := range g.Members {
					if m.InstanceID == *l.InstanceID {
						id = m.ID
					}
				}
			}
			codes[i] = 0
			if !g.remove(id) {
				codes[i] = kerr.UnknownMemberID.Code
				continue
			}
			removed = true
		}
		if !removed {
			return false, nil
		}
		switch {
		case len(g.Members) == 0:
			g.completeJoin(now) // the group is empty now
		case g.State == statePreparing:
			if g.allJoined() {
				g.completeJoin(now)
			}
		default:
			g.startRebalance(now)
		}
		return true, nil
	})
	if err != nil {
		resp.ErrorCode = c.errorCode("LeaveGroup", err)
		return resp
	}
	if r.Version < 3 {
		resp.ErrorCode = codes[0]
		return resp
	}
	for i, l := range leaving {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID, rm.ErrorCode = l.MemberID, l.InstanceID, codes[i]
		resp.Members = append(resp.Members, rm)
	}
	return resp
}
