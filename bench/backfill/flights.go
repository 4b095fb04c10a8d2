package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// The shape of the year: 336,776 departures from New York's three airports
// in 2013, by 16 carriers to about a hundred airports (the public record's
// totals and proportions; every value here is made up).
var (
	carriers = []struct {
		code   string
		weight int
	}{
		{"UA", 58665}, {"B6", 54635}, {"EV", 54173}, {"DL", 48110}, {"AA", 32729}, {"MQ", 26397}, {"US", 20536}, {"9E", 18460},
		{"WN", 12275}, {"VX", 5162}, {"FL", 3260}, {"AS", 714}, {"F9", 685}, {"YV", 601}, {"HA", 342}, {"OO", 32},
	}
	origins = []struct {
		code   string
		weight int
	}{{"EWR", 120835}, {"JFK", 111279}, {"LGA", 104662}}
	dests = strings.Fields(`ATL ORD LAX BOS MCO CLT SFO FLL MIA DCA DTW DFW RDU TPA DEN IAH MSP PBI BNA LAS SJU IAD BUF PHX
		CLE STL MDW RSW SRQ PIT MSY BWI CMH IND SAN CVG JAX CHS SEA AUS BTV RIC ROC MKE SYR SLC PWM HOU MEM SAT PDX CAK
		GSO ORF BDL DAY JAC SDF GSP MCI BGR XNA TUL SAV OMA ALB DSM CHO OKC TYS GRR TVC BHM PVD ILM MHT CRW BZN EGE
		MSN CAE AVL HNL SMF SNA PHL ABQ ANC BQN STT MYR ACK MVY PSE OAK SJC LGB BUR MTJ HDN EYW SBN CHA`)
)

// flightsEpoch is the first day of the year generated.
var flightsEpoch = time.Date(2013, 1, 1, 0, 0, 0, 0, time.UTC)

// generateFlights returns n events spread over 365 days as NDJSON lines
// (each with an "id"), day after day, in random order within each day, as
// a system that exports a day at a time would send them. The same seed
// gives the same lines.
func generateFlights(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 2013))
	pickC := weighted(len(carriers), func(i int) int { return carriers[i].weight })
	pickO := weighted(len(origins), func(i int) int { return origins[i].weight })
	// Each carrier flies its own fleet: about 4,000 aircraft in all.
	fleets := make([][]string, len(carriers))
	for i, c := range carriers {
		size := max(2, c.weight*4000/336776)
		for j := range size {
			fleets[i] = append(fleets[i], fmt.Sprintf("N%03d%s", (i*977+j*31)%1000, string(rune('A'+j%26))+c.code[:1]))
		}
	}
	distance := make([]int, len(dests))
	for i := range dests {
		distance[i] = 80 + (i*2654435761)%4900
	}
	lines := make([]string, 0, n)
	id := 0
	for day := range 365 {
		count := n / 365
		if day < n%365 {
			count++
		}
		start := len(lines)
		for range count {
			id++
			lines = append(lines, flight(r, id, flightsEpoch.AddDate(0, 0, day), pickC, pickO, fleets, distance))
		}
		todays := lines[start:]
		r.Shuffle(len(todays), func(i, j int) { todays[i], todays[j] = todays[j], todays[i] })
	}
	return lines
}

// weighted returns a function picking an index with probability
// proportional to weight(i).
func weighted(n int, weight func(int) int) func(*rand.Rand) int {
	cum := make([]int, n)
	total := 0
	for i := range n {
		total += weight(i)
		cum[i] = total
	}
	return func(r *rand.Rand) int {
		x := r.IntN(total)
		for i, c := range cum {
			if x < c {
				return i
			}
		}
		return n - 1
	}
}

func flight(r *rand.Rand, id int, day time.Time, pickC, pickO func(*rand.Rand) int, fleets [][]string, distance []int) string {
	c := pickC(r)
	o := pickO(r)
	d := r.IntN(len(dests))
	hour, minute := 5+r.IntN(19), 5*r.IntN(12)
	sched := day.Add(time.Duration(hour)*time.Hour + time.Duration(minute)*time.Minute)
	dist := distance[d]
	airTime := math.Max(20, math.Round(float64(dist)/7.5+r.NormFloat64()*8))
	schedArr := sched.Add(time.Duration(airTime+25) * time.Minute)
	var b strings.Builder
	fmt.Fprintf(&b, `{"id":"f%06d","sched_dep":"%s","carrier":"%s","flight":%d,"tailnum":"%s","origin":"%s","dest":"%s","distance":%d,"hour":%d,"minute":%d,"sched_arr_time":%d`,
		id, sched.Format(time.RFC3339), carriers[c].code, 1+(c*613+d*37+hour)%8500, fleets[c][r.IntN(len(fleets[c]))],
		origins[o].code, dests[d], dist, hour, minute, hhmm(schedArr))
	switch x := r.Float64(); {
	case x < 0.027: // cancelled: no times, no delays
		b.WriteString(`,"dep_time":null,"dep_delay":null,"arr_time":null,"arr_delay":null,"air_time":null,"cancelled":true}`)
	default:
		var dep float64
		switch y := r.Float64(); {
		case y < 0.55:
			dep = float64(-r.IntN(11))
		case y < 0.85:
			dep = float64(1 + r.IntN(30))
		default:
			dep = math.Min(1300, math.Round(r.ExpFloat64()*60))
		}
		depAt := sched.Add(time.Duration(dep) * time.Minute)
		fmt.Fprintf(&b, `,"dep_time":%d,"dep_delay":%s`, hhmm(depAt), strconv.FormatFloat(dep, 'f', -1, 64))
		if x < 0.03 { // diverted: departed, never arrived where planned
			b.WriteString(`,"arr_time":null,"arr_delay":null,"air_time":null,"cancelled":false}`)
			break
		}
		arr := dep + math.Round(r.NormFloat64()*10-5)
		fmt.Fprintf(&b, `,"arr_time":%d,"arr_delay":%s,"air_time":%s,"cancelled":false}`,
			hhmm(schedArr.Add(time.Duration(arr)*time.Minute)), strconv.FormatFloat(arr, 'f', -1, 64), strconv.FormatFloat(airTime, 'f', -1, 64))
	}
	return b.String()
}

// hhmm is a clock time as the record writes it: 5:17 pm is 1717.
func hhmm(t time.Time) int { return t.Hour()*100 + t.Minute() }
