package measure

import (
	"reflect"
	"testing"
)

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
pkg: github.com/lambdaflow/lambdaflow/speed
BenchmarkWindowJob/keys=8-2         	       1	3109074017 ns/op	   6573974 events/cpu-s	   5218483 events/s
--- BENCH: BenchmarkWindowJob/keys=8-2
    bench_test.go:486: checksum windows=136 count=10000000
BenchmarkHTTPIngest/R1-fsync-2         	   18336	    205288 ns/op	  47.36 MB/s	         1.432 append-ms
PASS
`
	got := ParseGoBench(out)
	want := []Bench{
		{Name: "BenchmarkWindowJob/keys=8", Values: map[string]float64{"ns/op": 3109074017, "events/cpu-s": 6573974, "events/s": 5218483},
			Logs: []string{"bench_test.go:486: checksum windows=136 count=10000000"}},
		{Name: "BenchmarkHTTPIngest/R1-fsync", Values: map[string]float64{"ns/op": 205288, "MB/s": 47.36, "append-ms": 1.432}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if _, err := Find(got, "BenchmarkWindowJob/keys=100000"); err == nil {
		t.Fatal("Find of a benchmark that did not run: no error")
	}
	if _, err := got[1].Value("events/s"); err == nil {
		t.Fatal("Value of a unit not reported: no error")
	}
}

func TestFields(t *testing.T) {
	f, err := Fields("SLF4J: noise\nresult events=10 cpu_s=1.5\nresult events=11\n", "result")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f, map[string]string{"events": "10", "cpu_s": "1.5"}) {
		t.Fatalf("got %v", f)
	}
	if v, err := Float(f, "cpu_s"); err != nil || v != 1.5 {
		t.Fatalf("Float: %v %v", v, err)
	}
	if _, err := Float(f, "wall_s"); err == nil {
		t.Fatal("Float of a missing key: no error")
	}
	if _, err := Fields("result oops\n", "result"); err == nil {
		t.Fatal("a field without = : no error")
	}
	if _, err := Fields("nothing here\n", "result"); err == nil {
		t.Fatal("no result line: no error")
	}
}

func TestMedianRatio(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(c.xs); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.xs, got, c.want)
		}
	}
	r := Row{Ours: []float64{2, 4, 3}, Theirs: []float64{1, 1, 2}, Lower: true}
	if r.Ratio() != 3 || r.Ahead() {
		t.Fatalf("ratio %v ahead %v; want 3, behind (lower is better)", r.Ratio(), r.Ahead())
	}
	for x, want := range map[float64]string{1234567: "1.23M", 56789: "56.8k", 13.29: "13.3", 0.679: "0.679"} {
		if got := Human(x); got != want {
			t.Errorf("Human(%v) = %q, want %q", x, got, want)
		}
	}
}
