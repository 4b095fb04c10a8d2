package groups

import (
	"fmt"
	"testing"
)

// TestRebalanceDeals: partitions are dealt round-robin per topic to the
// members reading it, in member-id order; positions survive only with
// their owner.
func TestRebalanceDeals(t *testing.T) {
	parts := func(topic string) int { return map[string]int{"a": 4, "b": 1}[topic] }
	s := &state{Members: []*member{{ID: "m2", Topics: []string{"a"}}, {ID: "m1", Topics: []string{"a", "b"}}}}
	s.rebalance(parts)
	got := fmt.Sprintln(s.Members[0].ID, s.Members[0].Assigned, s.Members[1].ID, s.Members[1].Assigned)
	if want := "m1 [{a 0} {a 2} {b 0}] m2 [{a 1} {a 3}]\n"; got != want || s.Generation != 1 {
		t.Fatalf("deal: %s (generation %d), want %s", got, s.Generation, want)
	}
	s.Positions = map[string]int64{"a/0": 5, "a/1": 7}
	s.Members = s.Members[1:] // m1 leaves
	s.rebalance(parts)
	if fmt.Sprint(s.Members[0].Assigned) != "[{a 0} {a 1} {a 2} {a 3}]" {
		t.Fatalf("m2 alone: %v", s.Members[0].Assigned)
	}
	// a/1 stays with m2 and keeps its position; a/0 moved and starts from
	// the group's commit.
	if fmt.Sprint(s.Positions) != "map[a/1:7]" {
		t.Errorf("positions %v, want only a/1", s.Positions)
	}
}
