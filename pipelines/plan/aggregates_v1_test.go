package plan

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/internal/testtopic"
)

// TestAggReadsVersion1DistinctStates reads count_distinct states written by
// state version 1 (testdata/agg_state_v1_long_strings.txt: "mode short long
// n hosts hex" per line; short hosts "h-%d", long ones
// "host-%04d.eu-west-1.compute.internal", each of 35 bytes, one note "x").
// They read as they were written, and go on as aggregate.StateVersion documents: a
// short string seen again is not counted again, a string of 32 bytes or more
// is, once.
func TestAggReadsVersion1DistinctStates(t *testing.T) {
	v := designView()
	v.Where = ""
	v.GroupBy = nil
	v.Aggregates = pipelines.Aggregates{{Name: "n", Func: "count"}, {Name: "hosts", Func: "count_distinct", Field: "host"},
		{Name: "notes", Func: "count_distinct", Field: "note"}}
	p := mustCompile(t, v)
	f, err := os.Open("testdata/agg_state_v1_long_strings.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	host := func(i, short int) string {
		if i < short {
			return fmt.Sprintf("h-%d", i)
		}
		return fmt.Sprintf("host-%04d.eu-west-1.compute.internal", i)
	}
	ev := func(host string) *event.Event {
		return newEvent(1_700_000_000_000_000, "id", map[int]any{testtopic.Host: host, testtopic.CPU: 1.0, testtopic.Bytes: int64(1), testtopic.Note: "x"})
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	lines := 0
	for sc.Scan() {
		lines++
		fs := strings.Fields(sc.Text())
		mode := fs[0]
		var num [4]int64
		for i := range num {
			if num[i], err = strconv.ParseInt(fs[1+i], 10, 64); err != nil {
				t.Fatal(err)
			}
		}
		short, long, n, hosts := int(num[0]), int(num[1]), num[2], num[3]
		raw, err := hex.DecodeString(fs[5])
		if err != nil || raw[0] != 1 {
			t.Fatalf("%s: not a version 1 state (%v)", mode, err)
		}
		s, err := p.UnmarshalState(raw)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		got := p.Finalize(s)
		if n != int64(short+long) || got[0].I != n || got[1].I != hosts || got[2].I != 1 {
			t.Fatalf("%s: read n %d, hosts %d, notes %d; written %d, %d, 1", mode, got[0].I, got[1].I, got[2].I, n, hosts)
		}
		if mode != "exact" {
			// A HyperLogLog's estimate moves by one value's second hash
			// at most; its registers read back is all there is to check.
			continue
		}
		// Every short host again: nothing new.
		for i := range short {
			p.Update(s, ev(host(i, short)))
		}
		if c := p.Finalize(s)[1].I; c != hosts {
			t.Fatalf("%s: short hosts again counted %d, want %d", mode, c, hosts)
		}
		// One long host again: counted a second time, as documented.
		p.Update(s, ev(host(short, short)))
		if c := p.Finalize(s)[1].I; c != hosts+1 {
			t.Fatalf("%s: a long host again counted %d, want %d (once under each hash)", mode, c, hosts+1)
		}
		// Written again, the state is version 2 and reads the same.
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != aggregate.StateVersion {
			t.Fatalf("re-marshalled as version %d", b[0])
		}
		s2, err := p.UnmarshalState(b)
		if err != nil || p.Finalize(s2)[1].I != hosts+1 {
			t.Fatalf("re-read: %v, hosts %d", err, p.Finalize(s2)[1].I)
		}
	}
	if lines != 2 {
		t.Fatalf("%d states in the file, want 2", lines)
	}
}
