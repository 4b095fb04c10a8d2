// Package mirror pulls other sites' topics into this site's log, so that one
// site's views, lake and sinks count the events of every site: a topic with
// sources (topics[].sources in the pipeline file) has one link per source,
// and each link pulls the same topic of the other site, partition by
// partition, and appends its events to the local topic through the local
// append path, keeping their ids and their origin in the field _site.
//
// # Exactly once
//
// A link reads the other site's partitions over a NATS connection to that
// site (broker.OpenRemote: a read-only view of its log) and appends what it
// reads with broker.AppendFrom, which records in each entry the other
// site's partition and the offset there after the entry's last event, and
// appends only if the local partition holds nothing of that source from the
// append's first event on. The log itself therefore says what it holds of
// each source, and a pull that is repeated (after a broken link, a restart
// of either site, a retry, or by a second process running the same link)
// is refused instead of stored twice; the link skips what is already there
// and goes on. A link's position (m.<consumer>.<partition> in the offsets
// bucket) is where it resumes and what its lag is computed from; it is a
// shortcut, not the guarantee: a stale one costs a re-read, never a
// duplicate. docs/sites.md compares this with JetStream sources and with
// deduplication by id.
//
// # Lag and health
//
// Each link is the consumer mirror.<site>.<topic> in the lag (broker.Lag,
// /v1/lag, metrics, the console), one row per partition of the other site,
// in that site's offsets; its lag in seconds is the age (by append time at
// the other site) of the oldest event not pulled yet, and, while the other
// site cannot be reached, at least the time since it last answered. Each
// link is a readiness check ("link <site> <topic>") that names why it is
// down: no answer, refused credentials, no such topic there, or a schema
// that differs from the local topic's.
//
// # Several processes
//
// With Options.Owner (the process's cluster node), the processes running
// the mirror share each link: it is the cluster consumer
// mirror.<site>.<topic>, whose share q (one per local partition) is the
// other site's partitions rp with rp mod (local partitions) = q. A share is
// pulled by the one live process that owns it, which reads the share's
// positions afresh when it takes it. Ownership saves the reads; exactly
// once never depended on it (a second puller is refused, as above).
//
// The package must not serve HTTP or decode events of its own: it reads
// entries through broker and appends through broker. It runs with the
// ingest role.
package mirror
