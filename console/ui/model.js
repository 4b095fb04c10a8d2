// The model keeps the last samples of the pipeline's state (topics, lag,
// the live numbers of GET /v1/stats, views, jobs, sinks) and derives rates
// and trends from them: the API reports positions and counters (totals
// since the process started), the console turns successive samples into
// throughput.

// EMPTY_STATS stands for /v1/stats before the first answer, or where the
// process does not serve it: every part absent, every count 0.
export const EMPTY_STATS = Object.freeze({ pipeline: "", topics: [], consumers: [], ingest: null, views: [], batch: null, sinks: [] });

const KEEP = 90; // samples: three minutes at the 2 s refresh
const RATE_SPAN_MS = 10_000; // rates are averaged over about this long

export class Model {
  constructor() {
    this.samples = [];
    this.views = null; // GET /v1/views, or null when serving is not here
    this.jobs = null; // GET /v1/jobs, or null when batch is not here
    this.sinks = null; // GET /v1/sinks, or null when sinks are not here
    this.ready = null; // GET /readyz answer
    this.error = null; // the last refresh's failure
  }

  push(sample) {
    this.samples.push(sample);
    if (this.samples.length > KEEP) this.samples.shift();
  }

  get latest() {
    return this.samples[this.samples.length - 1] || { t: Date.now(), topics: [], lag: [], stats: EMPTY_STATS };
  }

  // rate is the per-second change of value(sample) over the last few
  // samples; null until there are two.
  rate(value) {
    const n = this.samples.length;
    if (n < 2) return null;
    const last = this.samples[n - 1];
    let i = n - 2;
    while (i > 0 && last.t - this.samples[i].t < RATE_SPAN_MS) i--;
    const first = this.samples[i];
    const a = value(first);
    const b = value(last);
    if (a === undefined || b === undefined || a === null || b === null) return null;
    const dt = (last.t - first.t) / 1000;
    if (dt <= 0) return null;
    return Math.max(0, (b - a) / dt);
  }

  // series is value(sample) over every kept sample (undefined ones skipped).
  series(value) {
    return this.samples.map(value).filter((v) => v !== undefined && v !== null);
  }

  topic(name, sample = this.latest) {
    return sample.topics.find((t) => t.name === name);
  }

  topicRate(name) {
    return this.rate((s) => {
      const t = this.topic(name, s);
      return t ? t.partitions.reduce((a, p) => a + p.end_offset, 0) : undefined;
    });
  }

  partitionRate(name, partition) {
    return this.rate((s) => {
      const t = this.topic(name, s);
      const p = t && t.partitions.find((p) => p.partition === partition);
      return p ? p.end_offset : undefined;
    });
  }

  lagRow(sample, c, topic, partition) {
    return sample.lag.find((l) => l.consumer === c && l.topic === topic && l.partition === partition);
  }

  // consumerRate is how fast a consumer reads (its read offset moves),
  // summed over partitions (of one partition when given).
  consumerRate(consumer, topic, partition) {
    return this.rate((s) => {
      const rows = s.lag.filter(
        (l) => l.consumer === consumer && (!topic || l.topic === topic) && (partition === undefined || l.partition === partition),
      );
      return rows.length ? rows.reduce((a, l) => a + l.read_offset, 0) : undefined;
    });
  }

  // lagTrend is a partition's read lag (events) over the kept samples.
  lagTrend(consumer, topic, partition) {
    return this.series((s) => {
      const l = this.lagRow(s, consumer, topic, partition);
      return l ? l.read_lag : undefined;
    });
  }

  // statRate is the per-second change of value(stats), a counter of
  // GET /v1/stats (undefined where the part is absent).
  statRate(value) {
    return this.rate((s) => value(s.stats));
  }

  // consumersOf lists each consumer of a topic (of every topic without
  // one) with its lags summed over partitions and its worst ages.
  consumersOf(topic) {
    return summarize(this.latest.lag.filter((l) => !topic || l.topic === topic));
  }
}

// summarize adds lag rows up per consumer: events summed, ages the worst.
export function summarize(rows) {
  const out = new Map();
  for (const l of rows) {
    const c = out.get(l.consumer) || {
      consumer: l.consumer,
      topic: l.topic,
      partitions: 0,
      lag: 0,
      lag_seconds: 0,
      read_lag: 0,
      read_lag_seconds: 0,
      event_time_lag_seconds: 0,
    };
    c.partitions++;
    c.lag += l.lag;
    c.read_lag += l.read_lag;
    c.lag_seconds = Math.max(c.lag_seconds, l.lag_seconds);
    c.read_lag_seconds = Math.max(c.read_lag_seconds, l.read_lag_seconds);
    c.event_time_lag_seconds = Math.max(c.event_time_lag_seconds, l.event_time_lag_seconds);
    out.set(l.consumer, c);
  }
  return [...out.values()];
}

// worstFirst orders lag rows (or summaries): the oldest unread event first
// (how far behind the consumer is), then the oldest uncommitted one, then
// most events behind, then by name so the order is stable between
// refreshes.
export function worstFirst(a, b) {
  return (
    b.read_lag_seconds - a.read_lag_seconds ||
    b.lag_seconds - a.lag_seconds ||
    b.read_lag - a.read_lag ||
    a.consumer.localeCompare(b.consumer) ||
    (a.topic || "").localeCompare(b.topic || "") ||
    (a.partition || 0) - (b.partition || 0)
  );
}

// since labels a counter of GET /v1/stats, which counts from the process's
// start: " since 15:04" (UTC), or "" before the first answer.
export function since(stats) {
  return stats.started ? " since " + String(stats.started).slice(11, 16) : "";
}

// deadLetters is how many records a sink ever dead-lettered: its
// dead-letter topic's end offset, which the log keeps across restarts.
export function deadLetters(sample, sink) {
  const t = sample.topics.find((x) => x.name === sink + "_dlq");
  return t ? t.partitions.reduce((a, p) => a + p.end_offset, 0) : 0;
}

// viewStats is the speed layer's numbers of one view, undefined when the
// speed layer does not run it here.
export function viewStats(stats, name) {
  return stats.views.find((v) => v.view === name);
}

// sinkStats is one sink's numbers, undefined when it does not run here.
export function sinkStats(stats, name) {
  return stats.sinks.find((x) => x.sink === name);
}

// sum adds value(x) over xs.
export function sum(xs, value) {
  return xs.reduce((a, x) => a + value(x), 0);
}
