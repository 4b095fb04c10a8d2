package main

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/internal/s3test"
	"github.com/lambdaflow/lambdaflow/pipelines"
)

func TestGenerateFlights(t *testing.T) {
	lines := generateFlights(3650, 1)
	if len(lines) != 3650 {
		t.Fatalf("%d lines, want 3650", len(lines))
	}
	again := generateFlights(3650, 1)
	if strings.Join(lines, "\n") != strings.Join(again, "\n") {
		t.Fatal("the same seed gave different flights")
	}
	ids := map[string]bool{}
	perDay := map[string]int{}
	lastDay := ""
	for i, l := range lines {
		var f map[string]any
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, l)
		}
		if len(f) != 17 { // id and 16 fields
			t.Fatalf("line %d has %d keys: %s", i, len(f), l)
		}
		id := f["id"].(string)
		if ids[id] {
			t.Fatalf("id %s twice", id)
		}
		ids[id] = true
		ts, err := time.Parse(time.RFC3339, f["sched_dep"].(string))
		if err != nil {
			t.Fatal(err)
		}
		day := ts.Format(time.DateOnly)
		if day < lastDay {
			t.Fatalf("line %d: day %s after %s: days must come in order", i, day, lastDay)
		}
		lastDay = day
		perDay[day]++
		if f["cancelled"] == true && f["dep_delay"] != nil {
			t.Fatalf("line %d: a cancelled flight with a delay: %s", i, l)
		}
	}
	if len(perDay) != 365 || perDay["2013-01-01"] != 10 || perDay["2013-12-31"] != 10 {
		t.Fatalf("%d days, %d flights on the first, %d on the last; want 365, 10, 10", len(perDay), perDay["2013-01-01"], perDay["2013-12-31"])
	}
	// Within a day the order is shuffled: ids do not increase throughout.
	if strings.Compare(lines[0], lines[1]) < 0 && strings.Compare(lines[1], lines[2]) < 0 && strings.Compare(lines[2], lines[3]) < 0 {
		t.Fatal("the first day is in generation order: not shuffled")
	}
}

func TestCompareAgg(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	for _, c := range []struct {
		kind, got, want string
		ok              bool
	}{
		{"exact", "12", "12", true},
		{"exact", "12", "13", false},
		{"exact", "null", "null", true},
		{"exact", "null", "0", false},
		{"avg", "1.0000000000001", "1", true},
		{"avg", "1.001", "1", false},
		{"distinct", "101", "100", true},
		{"distinct", "103", "100", false},
		// 11 sorted values, q=0.5: rank 5 (value 50); ranks 4–6 are allowed, ±1 %.
		{"sorted:0.5", "50", "[0,10,20,30,40,50,60,70,80,90,100]", true},
		{"sorted:0.5", "60.5", "[0,10,20,30,40,50,60,70,80,90,100]", true},
		{"sorted:0.5", "61", "[0,10,20,30,40,50,60,70,80,90,100]", false},
		{"sorted:0.5", "39", "[0,10,20,30,40,50,60,70,80,90,100]", false},
		{"sorted:0.95", "null", "null", true},
		{"sorted:0.95", "3", "null", false},
		{"sorted:0.95", "null", "[1]", false},
	} {
		err := compareAgg(c.kind, raw(c.got), raw(c.want))
		if (err == nil) != c.ok {
			t.Errorf("compareAgg(%s, %s, %s) = %v, want ok=%v", c.kind, c.got, c.want, err, c.ok)
		}
	}
}

func TestNYCLines(t *testing.T) {
	// Rows shaped like the record's: an ordinary flight, a diverted one
	// (departed, no arrival), a cancelled one without a tail number, and a
	// flight of the next day.
	csv := `year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,sched_arr_time,arr_delay,carrier,flight,tailnum,origin,dest,air_time,distance,hour,minute,time_hour
2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-01-01T10:00:00Z
2013,1,1,2016,1930,46,NA,2220,NA,EV,4204,N14168,EWR,OKC,NA,1325,19,30,2013-01-02T00:00:00Z
2013,1,1,NA,1630,NA,NA,1815,NA,EV,4308,NA,EWR,RDU,NA,416,16,30,2013-01-01T21:00:00Z
2013,1,2,2400,2359,1,440,445,-5,B6,739,N520JB,JFK,PSE,187,1617,23,59,2013-01-03T04:00:00Z
`
	lines, err := nycLines(strings.NewReader(csv), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4", len(lines))
	}
	byID := map[string]string{}
	for _, l := range lines[:3] {
		var f map[string]any
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		byID[f["id"].(string)] = l
	}
	want := map[string]string{
		"f000001": `{"id":"f000001","sched_dep":"2013-01-01T05:15:00Z","carrier":"UA","flight":1545,"tailnum":"N14228","origin":"EWR","dest":"IAH","distance":1400,"hour":5,"minute":15,"sched_arr_time":819,"dep_time":517,"dep_delay":2,"arr_time":830,"arr_delay":11,"air_time":227,"cancelled":false}`,
		"f000002": `{"id":"f000002","sched_dep":"2013-01-01T19:30:00Z","carrier":"EV","flight":4204,"tailnum":"N14168","origin":"EWR","dest":"OKC","distance":1325,"hour":19,"minute":30,"sched_arr_time":2220,"dep_time":2016,"dep_delay":46,"arr_time":null,"arr_delay":null,"air_time":null,"cancelled":false}`,
		"f000003": `{"id":"f000003","sched_dep":"2013-01-01T16:30:00Z","carrier":"EV","flight":4308,"tailnum":"","origin":"EWR","dest":"RDU","distance":416,"hour":16,"minute":30,"sched_arr_time":1815,"dep_time":null,"dep_delay":null,"arr_time":null,"arr_delay":null,"air_time":null,"cancelled":true}`,
	}
	for id, w := range want {
		if byID[id] != w {
			t.Errorf("%s:\n got %s\nwant %s", id, byID[id], w)
		}
	}
	// The next day's flight comes after the first day's, whatever the shuffle.
	if wantLast := `{"id":"f000004","sched_dep":"2013-01-02T23:59:00Z","carrier":"B6","flight":739,"tailnum":"N520JB","origin":"JFK","dest":"PSE","distance":1617,"hour":23,"minute":59,"sched_arr_time":445,"dep_time":2400,"dep_delay":1,"arr_time":440,"arr_delay":-5,"air_time":187,"cancelled":false}`; lines[3] != wantLast {
		t.Errorf("last line:\n got %s\nwant %s", lines[3], wantLast)
	}
	// Bad input: a clear error naming the row, nothing returned.
	for _, bad := range []string{
		"2013,1,1,517,5x5,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,x",
		"2013,1,1,517,575,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,x",
	} {
		head := csv[:strings.Index(csv, "\n")+1]
		if lines, err := nycLines(strings.NewReader(head+bad+"\n"), 1); err == nil || !strings.Contains(err.Error(), "row 1: sched_dep_time") {
			t.Errorf("%s: got %d lines, error %v; want an error naming row 1's sched_dep_time", bad, len(lines), err)
		}
	}
	// Days come in calendar order whatever the record's order.
	lines, err = nycLines(strings.NewReader(csv[:strings.Index(csv, "\n")+1]+"2013,2,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,x\n"+csv[strings.Index(csv, "\n")+1:]), 1)
	if err != nil || len(lines) != 5 || !strings.Contains(lines[4], `"sched_dep":"2013-02-01T05:15:00Z"`) {
		t.Errorf("February's flight first in the record: got %d lines (last %s), error %v; want it last", len(lines), lines[len(lines)-1], err)
	}
}

// TestPipelineCopy checks that the pipeline file the harness writes for
// -partitioning and -lake s3 loads, with the topic's partitioning and the
// lake's keys where the round's environment puts them.
func TestPipelineCopy(t *testing.T) {
	lake := lakeAt{s3: &lakestore.Config{Region: "eu-west-3", PathStyle: true}, base: "s3://bkt/backfill-x/"}
	path, err := pipelineCopy("flights.yaml", t.TempDir(), "daily", lake)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"BACKFILL_DATA":         "/tmp/data",
		"LF_TEST_S3_ENDPOINT":   "http://127.0.0.1:57070",
		"LF_TEST_S3_ACCESS_KEY": "ak",
		"LF_TEST_S3_SECRET_KEY": "sk",
	}
	for _, kv := range lake.roundEnv(2) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	p, err := pipelines.Load(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := p.Lake
	if l.URL != "s3://bkt/backfill-x/round2/" || l.Endpoint != "http://127.0.0.1:57070" || l.Region != "eu-west-3" ||
		l.AccessKeyID != "ak" || l.SecretAccessKey != "sk" || !l.PathStyle || l.Dir != "" {
		t.Fatalf("lake %+v", l)
	}
	if len(p.Topics) != 1 || p.Topics[0].Name != "flights" || p.Topics[0].Lake.Partitioning != "daily" {
		t.Fatalf("topics %+v", p.Topics)
	}

	// A directory lake leaves the file's lake alone.
	path, err = pipelineCopy("flights.yaml", t.TempDir(), "", lakeAt{})
	if err != nil {
		t.Fatal(err)
	}
	if p, err = pipelines.Load(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil); err != nil {
		t.Fatal(err)
	}
	if p.Lake.URL != "" || p.Topics[0].Lake.Partitioning != "hourly" {
		t.Fatalf("lake %+v, partitioning %q", p.Lake, p.Topics[0].Lake.Partitioning)
	}
	if _, err := pipelineCopy("flights.yaml", t.TempDir(), "weekly", lakeAt{}); err == nil || !strings.Contains(err.Error(), `-partitioning "weekly"`) {
		t.Fatalf("weekly: %v", err)
	}
}

// writeObjects writes each body under its key in st, create-only.
func writeObjects(t *testing.T, st lakestore.Store, objects map[string]string) {
	t.Helper()
	for key, body := range objects {
		if err := st.WriteFile(context.Background(), key, []byte(body), true); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLakeStats checks what the harness counts in a lake: data files and
// their bytes, not hidden files; the manifest log's bytes and newest
// version; and that the copy for readers of files holds the data files.
func TestLakeStats(t *testing.T) {
	ctx := context.Background()
	st, err := lakestore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	writeObjects(t, st, map[string]string{
		"flights/dt=2013-01-01/a.parquet":             strings.Repeat("a", 100),
		"flights/dt=2013-01-02/b.parquet":             strings.Repeat("b", 250),
		"flights/dt=2013-01-02/_hidden.parquet":       strings.Repeat("h", 7),
		"flights/_manifest/00000000000000000007.json": strings.Repeat("m", 30),
		"flights/_manifest/00000000000000000012.json": strings.Repeat("m", 40),
		"flights/_manifest/checkpoint.json":           strings.Repeat("c", 500),
		"other/dt=2013-01-01/c.parquet":               strings.Repeat("c", 1000),
	})
	var got lakeState
	if err := lakeStats(ctx, st, "flights", &got); err != nil {
		t.Fatal(err)
	}
	if want := (lakeState{files: 2, lakeBytes: 350, manifestBytes: 570, manifestVersion: 12}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if err := lakeStats(ctx, st, "other", &got); err == nil || !strings.Contains(err.Error(), "other/_manifest/: no manifest log") {
		t.Fatalf("a topic without a manifest: %v", err)
	}
	if dir, err := localLake(ctx, st, "flights", t.TempDir()); err != nil || dir != st.Path("flights") {
		t.Fatalf("a directory lake is read where it is: %q, %v", dir, err)
	}
}

// TestLakeOnS3 checks the harness's object-storage lake on the dev
// server: a round's lake is counted as a directory's is, copied for
// readers of files exactly, and emptied afterwards.
func TestLakeOnS3(t *testing.T) {
	s3test.Env(t)
	ctx := context.Background()
	lake, err := newLakeAt("s3", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lake.remove(context.Background(), 1) })
	st, err := lake.open(ctx, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer lakestore.CloseIdle(st)
	files := map[string]string{
		"flights/dt=2013-01-01/a.parquet": "first file",
		"flights/dt=2013-01-02/b.parquet": "the second file",
	}
	writeObjects(t, st, files)
	writeObjects(t, st, map[string]string{
		"flights/_manifest/00000000000000000003.json": "{}",
		"flights/.a.parquet.tmp":                      "x",
	})
	var got lakeState
	if err := lakeStats(ctx, st, "flights", &got); err != nil {
		t.Fatal(err)
	}
	if want := (lakeState{files: 2, lakeBytes: 25, manifestBytes: 2, manifestVersion: 3}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	copyDir := t.TempDir()
	dir, err := localLake(ctx, st, "flights", copyDir)
	if err != nil {
		t.Fatal(err)
	}
	if dir != filepath.Join(copyDir, "flights") {
		t.Fatalf("copy in %s", dir)
	}
	var copied []string
	err = filepath.WalkDir(copyDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(copyDir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if string(b) != files[filepath.ToSlash(rel)] {
			t.Errorf("%s holds %q", rel, b)
		}
		copied = append(copied, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(copied) != 2 {
		t.Fatalf("copied %v, want the 2 data files", copied)
	}
	if err := lake.remove(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if es, err := st.List(ctx, "", ""); err != nil || len(es) != 0 {
		t.Fatalf("after remove: %v, %v", es, err)
	}
}
