package broker

import (
	"encoding/json"
	"log/slog"
	"reflect"
	"testing"
)

// TestOffsetsScanKeepsLatestPerKey: a watch replaying the offsets bucket
// delivers a key again when it is written during the replay. The lag must
// still have one row per consumer and partition (a second one made
// /metrics answer 500: a series collected twice), with the later value.
func TestOffsetsScanKeepsLatestPerKey(t *testing.T) {
	s := offsetsScan{b: &Broker{log: slog.New(slog.DiscardHandler)}, reads: map[consumerPart]readRecord{}, at: map[string]int{}}
	put := func(key string, v any) {
		t.Helper()
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		s.add(key, data)
	}
	put(commitKey("speed.v", "clicks", 0), commitRecord{Offset: 5, CommittedAt: 1})
	put(commitKey("lake", "clicks", 0), commitRecord{Offset: 2, CommittedAt: 1})
	put(mirrorKey("link.a", 1), MirrorPosition{Topic: "clicks", Offset: 3})
	put(readKey("speed.v", "clicks", 0), readRecord{Offset: 6, At: 2})
	put(commitKey("speed.v", "clicks", 0), commitRecord{Offset: 9, CommittedAt: 3})
	put(mirrorKey("link.a", 1), MirrorPosition{Topic: "clicks", Offset: 4})
	put(readKey("speed.v", "clicks", 0), readRecord{Offset: 11, At: 4})
	s.add("c.bad", []byte("{")) // not a consumer key: skipped

	wantCommits := []commit{
		{consumer: "speed.v", topic: "clicks", part: 0, rec: commitRecord{Offset: 9, CommittedAt: 3}},
		{consumer: "lake", topic: "clicks", part: 0, rec: commitRecord{Offset: 2, CommittedAt: 1}},
	}
	if !reflect.DeepEqual(s.commits, wantCommits) {
		t.Errorf("commits %+v, want %+v", s.commits, wantCommits)
	}
	wantMirrors := []mirrorRecord{{consumer: "link.a", part: 1, pos: MirrorPosition{Topic: "clicks", Offset: 4}}}
	if !reflect.DeepEqual(s.mirrors, wantMirrors) {
		t.Errorf("mirrors %+v, want %+v", s.mirrors, wantMirrors)
	}
	wantReads := map[consumerPart]readRecord{{"speed.v", "clicks", 0}: {Offset: 11, At: 4}}
	if !reflect.DeepEqual(s.reads, wantReads) {
		t.Errorf("reads %+v, want %+v", s.reads, wantReads)
	}
}
