package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// offsetCommit stores a group's positions where every consumer's are: the
// log's offsets bucket, as consumer "kafka.<group>" (so they show in lag
// and survive restarts). Members commit within their generation; a
// consumer outside any group (generation -1) may commit while the group
// has no members. Commit metadata is not kept.
func (c *conn) offsetCommit(ctx context.Context, r *kmsg.OffsetCommitRequest) kmsg.Response {
	resp := kmsg.NewPtrOffsetCommitResponse()
	code := int16(0)
	switch {
	case r.Group == "":
		code = kerr.InvalidGroupID.Code
	case !c.allowedGroup():
		code = kerr.GroupAuthorizationFailed.Code
	default:
		g, _, err := c.s.groups.read(ctx, r.Group)
		switch {
		case err != nil:
			code = c.errorCode("OffsetCommit", err)
		case r.Generation < 0 && r.MemberID == "":
			if len(g.Members) > 0 {
				code = kerr.UnknownMemberID.Code
			}
		default:
			if err := checkMember(g, r.MemberID, r.Generation); err != nil {
				code = c.errorCode("OffsetCommit", err)
			} else if g.State == statePreparing {
				code = kerr.RebalanceInProgress.Code
			}
		}
	}
	consumer := ConsumerName(r.Group)
	for _, t := range r.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		spec := c.s.topics[t.Topic]
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			switch {
			case code != 0:
			case spec == nil || p.Partition < 0 || int(p.Partition) >= max(spec.Partitions, 1):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case p.Offset < 0:
				rp.ErrorCode = kerr.InvalidCommitOffsetSize.Code
			default:
				if err := c.s.log.Commit(ctx, consumer, t.Topic, int(p.Partition), p.Offset, 0); err != nil {
					rp.ErrorCode = c.errorCode("OffsetCommit", err)
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// committedOffsets returns a group's committed offsets of the partitions
// asked for (all topics when topics is nil): -1 where it has none.
func (c *conn) committedOffsets(ctx context.Context, group string, topics map[string][]int32, all bool) (map[string]map[int32]int64, int16) {
	out := map[string]map[int32]int64{}
	consumer := ConsumerName(group)
	if all {
		topics = map[string][]int32{}
		for i := range c.s.p.Topics {
			t := &c.s.p.Topics[i]
			for p := range max(t.Partitions, 1) {
				topics[t.Name] = append(topics[t.Name], int32(p))
			}
		}
	}
	for topic, parts := range topics {
		out[topic] = map[int32]int64{}
		spec := c.s.topics[topic]
		for _, p := range parts {
			if spec == nil || p < 0 || int(p) >= max(spec.Partitions, 1) {
				out[topic][p] = -2 // unknown partition
				continue
			}
			off, ok, err := c.s.log.Committed(ctx, consumer, topic, int(p))
			if err != nil {
				return nil, c.errorCode("OffsetFetch", err)
			}
			if !ok {
				if all {
					continue
				}
				off = -1
			}
			out[topic][p] = off
		}
	}
	return out, 0
}

func (c *conn) offsetFetch(ctx context.Context, r *kmsg.OffsetFetchRequest) kmsg.Response {
	resp := kmsg.NewPtrOffsetFetchResponse()
	type ask struct {
		group  string
		topics map[string][]int32
		all    bool
	}
	var asks []ask
	if r.Version >= 8 {
		for _, g := range r.Groups {
			a := ask{group: g.Group, all: g.Topics == nil, topics: map[string][]int32{}}
			for _, t := range g.Topics {
				a.topics[t.Topic] = t.Partitions
			}
			asks = append(asks, a)
		}
	} else {
		a := ask{group: r.Group, all: r.Topics == nil, topics: map[string][]int32{}}
		for _, t := range r.Topics {
			a.topics[t.Topic] = t.Partitions
		}
		asks = append(asks, a)
	}
	for _, a := range asks {
		rg := kmsg.NewOffsetFetchResponseGroup()
		rg.Group = a.group
		var offs map[string]map[int32]int64
		if !c.allowedGroup() {
			rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
		} else {
			offs, rg.ErrorCode = c.committedOffsets(ctx, a.group, a.topics, a.all)
		}
		for topic, parts := range offs {
			if len(parts) == 0 {
				continue
			}
			rt := kmsg.NewOffsetFetchResponseGroupTopic()
			rt.Topic = topic
			for p, off := range parts {
				rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch = p, off, -1
				empty := ""
				rp.Metadata = &empty
				if off == -2 {
					rp.Offset, rp.ErrorCode = -1, kerr.UnknownTopicOrPartition.Code
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			rg.Topics = append(rg.Topics, rt)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	if r.Version < 8 && len(resp.Groups) == 1 {
		g := resp.Groups[0]
		resp.ErrorCode = g.ErrorCode
		for _, t := range g.Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
	}
	return resp
}

func (c *conn) describeGroups(ctx context.Context, r *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeGroupsResponse()
	for _, name := range r.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = name
		if !c.allowedGroup() {
			rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		g, rev, err := c.s.groups.read(ctx, name)
		if err != nil {
			rg.ErrorCode = c.errorCode("DescribeGroups", err)
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		rg.State, rg.ProtocolType, rg.Protocol = g.State, g.ProtocolType, g.Protocol
		if rev == 0 {
			rg.State = stateDead
		}
		for _, m := range g.Members {
			rm := kmsg.NewDescribeGroupsResponseGroupMember()
			rm.MemberID, rm.ClientID, rm.ClientHost = m.ID, m.ClientID, m.ClientHost
			if m.InstanceID != "" {
				inst := m.InstanceID
				rm.InstanceID = &inst
			}
			rm.ProtocolMetadata, rm.MemberAssignment = m.metadata(g.Protocol), m.Assignment
			rg.Members = append(rg.Members, rm)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

func (c *conn) listGroups(ctx context.Context, r *kmsg.ListGroupsRequest) kmsg.Response {
	resp := kmsg.NewPtrListGroupsResponse()
	if !c.allowedGroup() {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp
	}
	names, err := c.s.groups.listGroups(ctx)
	if err != nil {
		resp.ErrorCode = c.errorCode("ListGroups", err)
		return resp
	}
	for _, name := range names {
		g, _, err := c.s.groups.read(ctx, name)
		if err != nil {
			resp.ErrorCode = c.errorCode("ListGroups", err)
			return resp
		}
		if len(r.StatesFilter) > 0 && !contains(r.StatesFilter, g.State) {
			continue
		}
		rg := kmsg.NewListGroupsResponseGroup()
		rg.Group, rg.ProtocolType, rg.GroupState, rg.GroupType = name, g.ProtocolType, g.State, "classic"
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}
