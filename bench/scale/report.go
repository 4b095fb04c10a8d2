package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/bench/measure"
)

// result is one measurement: N workers catching up the backlog.
type result struct {
	events int
	took   time.Duration // from starting the workers to every partition committed at the end
	steady float64       // events/s while the read lag fell from 90 % to 10 % of the backlog
	cpu    float64       // CPU seconds of the workers, together
	// CPU seconds of the harness (its NATS server) and the observer
	// during the catch-up: what the uncapped parts needed.
	infraCPU float64
	// The share of the workers' CFS periods that used up the cap: near 1
	// the workers' CPU share bounds the rate; low, something else does
	// (NATS, the disk, the database, a machine too busy to give the share).
	throttled float64
	load      float64 // the 1-minute load average at the end
}

// rate is the whole catch-up's events per second, startup included.
func (r result) rate() float64 {
	if r.took <= 0 {
		return 0
	}
	return float64(r.events) / r.took.Seconds()
}

// sample is one poll of a consumer's lag, summed over its partitions.
type sample struct {
	at      time.Duration // since the workers were started
	readLag int64
}

// steadyRate is the events per second between the first sample at or below
// 90 % of the backlog and the first at or below 10 %: the rate once every
// worker runs, without the start and the tail. 0 when the samples do not
// span that range (a catch-up faster than the polls).
func steadyRate(samples []sample, backlog int64) float64 {
	hi, lo := backlog*9/10, backlog/10
	a, b := -1, -1
	for i, s := range samples {
		if a < 0 && s.readLag <= hi {
			a = i
		}
		if s.readLag <= lo {
			b = i
			break
		}
	}
	if a < 0 || b <= a || samples[b].at <= samples[a].at {
		return 0
	}
	return float64(samples[a].readLag-samples[b].readLag) / (samples[b].at - samples[a].at).Seconds()
}

// table prints one row per consumer and worker count: medians, the rounds
// behind them, and the speed-up over one worker as the median of the
// rounds' ratios (each round's N-worker figure over the same round's
// 1-worker figure).
func table(w io.Writer, o options, results map[string]map[int][]result) {
	fmt.Fprintln(w, "| consumer | workers | catch-up events/s (median; rounds) | × 1 worker | steady events/s (90 %→10 % of the lag) | × 1 worker | worker CPU-s per 1M events | periods at the cap | NATS + observer CPU-s per 1M events | load |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, c := range o.consumers {
		byN := results[c.name]
		base := byN[1]
		for _, n := range o.workers {
			rs := byN[n]
			var rate, steady, cpu, throttled, infra, load []float64
			for _, r := range rs {
				rate = append(rate, r.rate())
				steady = append(steady, r.steady)
				cpu = append(cpu, r.cpu/float64(r.events)*1e6)
				throttled = append(throttled, r.throttled*100)
				infra = append(infra, r.infraCPU/float64(r.events)*1e6)
				load = append(load, r.load)
			}
			fmt.Fprintf(w, "| %s | %d | %s (%s) | %s | %s (%s) | %s | %.2f | %.0f %% | %.2f | %.0f |\n", c.consumer, n,
				measure.Human(measure.Median(rate)), join(rate), ratio(rs, base, result.rate),
				measure.Human(measure.Median(steady)), join(steady), ratio(rs, base, func(r result) float64 { return r.steady }),
				measure.Median(cpu), measure.Median(throttled), measure.Median(infra), measure.Median(load))
		}
	}
}

// ratio is the median over rounds of f(rs[i]) / f(base[i]), formatted.
func ratio(rs, base []result, f func(result) float64) string {
	var xs []float64
	for i := range min(len(rs), len(base)) {
		if b := f(base[i]); b > 0 {
			xs = append(xs, f(rs[i])/b)
		}
	}
	if len(xs) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", measure.Median(xs))
}

func join(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = measure.Human(x)
	}
	return strings.Join(s, " / ")
}
