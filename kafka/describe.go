package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/groups"
)

// Groups describes every Kafka consumer group for GET /v1/groups: members
// with the partitions their assignment gives them (decoded when the
// protocol type is "consumer"), committed positions and lag.
func (s *Server) Groups(ctx context.Context) ([]api.Group, error) {
	names, err := s.groups.listGroups(ctx)
	if err != nil {
		return nil, err
	}
	lag, err := s.log.Lag(ctx)
	if err != nil {
		return nil, err
	}
	out := []api.Group{}
	for _, name := range names {
		g, _, err := s.groups.read(ctx, name)
		if err != nil {
			return nil, err
		}
		d := api.Group{Group: name, Protocol: "kafka", Consumer: ConsumerName(name), State: g.State,
			Generation: int64(g.Generation), Members: []api.GroupMember{}}
		for _, m := range g.Members {
			seen := time.UnixMicro(m.Seen).UTC().Format(time.RFC3339Nano)
			gm := api.GroupMember{Member: m.ID, Client: m.ClientID, Assignments: []api.TopicPartition{}, LastSeen: &seen}
			if g.ProtocolType == "consumer" && len(m.Assignment) > 0 {
				var a kmsg.ConsumerMemberAssignment
				if a.ReadFrom(m.Assignment) == nil {
					for _, t := range a.Topics {
						for _, p := range t.Partitions {
							gm.Assignments = append(gm.Assignments, api.TopicPartition{Topic: t.Topic, Partition: int(p)})
						}
					}
				}
			}
			d.Members = append(d.Members, gm)
		}
		d.Partitions, d.Lag = groups.Positions(d.Consumer, lag)
		out = append(out, d)
	}
	return out, nil
}
