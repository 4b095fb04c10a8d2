package groups

import (
	"slices"
	"strconv"
	"strings"

	"github.com/lambdaflow/lambdaflow/api"
)

// state is one HTTP group as stored (JSON) in the group bucket.
type state struct {
	Generation int64     `json:"generation"`
	Members    []*member `json:"members,omitempty"`
	// Positions are the next offsets to deliver, per "topic/partition",
	// for partitions that have an owner and delivered something in its
	// generation.
	Positions map[string]int64 `json:"positions,omitempty"`
}

type member struct {
	ID       string   `json:"id"`
	Client   string   `json:"client,omitempty"`
	Topics   []string `json:"topics"`
	Session  int64    `json:"session_ms"`
	Reset    string   `json:"reset"`
	Seen     int64    `json:"seen"` // µs
	Assigned []tp     `json:"assigned,omitempty"`
}

type tp struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
}

func (p tp) key() string { return p.Topic + "/" + strconv.Itoa(p.Partition) }

func (s *state) member(id string) *member {
	for _, m := range s.Members {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// expire removes members silent for their session timeout and reports
// whether it did (then the partitions were dealt again).
func (s *state) expire(now int64, partitions func(topic string) int) bool {
	n := len(s.Members)
	s.Members = slices.DeleteFunc(s.Members, func(m *member) bool { return m.Seen+m.Session*1000 < now })
	if len(s.Members) == n {
		return false
	}
	s.rebalance(partitions)
	return true
}

// rebalance starts a new generation: every subscribed topic's partitions
// are dealt round-robin to the members reading the topic, in member-id
// order. A partition keeps its delivery position only if its owner stays.
func (s *state) rebalance(partitions func(topic string) int) {
	s.Generation++
	slices.SortFunc(s.Members, func(a, b *member) int { return strings.Compare(a.ID, b.ID) })
	old := map[string]string{} // partition → previous owner
	for _, m := range s.Members {
		for _, p := range m.Assigned {
			old[p.key()] = m.ID
		}
		m.Assigned = nil
	}
	var topics []string
	for _, m := range s.Members {
		for _, t := range m.Topics {
			if !slices.Contains(topics, t) {
				topics = append(topics, t)
			}
		}
	}
	slices.Sort(topics)
	for _, t := range topics {
		var readers []*member
		for _, m := range s.Members {
			if slices.Contains(m.Topics, t) {
				readers = append(readers, m)
			}
		}
		for p := range partitions(t) {
			readers[p%len(readers)].Assigned = append(readers[p%len(readers)].Assigned, tp{t, p})
		}
	}
	keep := map[string]int64{}
	for _, m := range s.Members {
		for _, p := range m.Assigned {
			if pos, ok := s.Positions[p.key()]; ok && old[p.key()] == m.ID {
				keep[p.key()] = pos
			}
		}
	}
	s.Positions = keep
}

func (m *member) owns(topic string, part int) bool {
	return slices.Contains(m.Assigned, tp{topic, part})
}

func assignments(ps []tp) []api.TopicPartition {
	out := make([]api.TopicPartition, 0, len(ps))
	for _, p := range ps {
		out = append(out, api.TopicPartition{Topic: p.Topic, Partition: p.Partition})
	}
	return out
}
