package pipelines

import (
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Pipeline is one pipeline file, version 1. Field tags drive decoding, validation
// and the JSON Schema alike: `yaml` names the key, `doc` documents it, `default`
// is applied before decoding, `enum` lists the accepted values.
type Pipeline struct {
	Version int    `yaml:"version" doc:"Format version of this file; must be 1." required:"true"`
	Name    string `yaml:"name" doc:"Pipeline name: lowercase letters, digits, '_' and '-'; used in metric labels." required:"true"`
	Site    string `yaml:"site" pattern:"^[a-z][a-z0-9_-]{0,62}$" rule:"1 to 63 lowercase letters, digits, '_' or '-', starting with a letter" doc:"This site's name: the origin (field _site) of the events ingest accepts into topics that pull other sites' events (topics[].sources), and the name other sites give this one in theirs. Default: the pipeline name."`
	DataDir string `yaml:"data_dir" default:"./data" doc:"Directory for the embedded broker store, the lake and checkpoints."`
	// ShutdownTimeout bounds a stop: see cmd/lambdaflow's serve.
	ShutdownTimeout Duration `yaml:"shutdown_timeout" default:"10s" doc:"Longest a stop (SIGTERM, Ctrl-C) may take: answering requests in flight, flushing sinks and lake files, checkpointing. Past it the process exits anyway; nothing acknowledged is lost, and every part resumes from its last checkpoint and committed offsets."`
	HTTP            HTTP     `yaml:"http" doc:"The HTTP listener for ingest, queries, the console and metrics."`
	Broker          Broker   `yaml:"broker" doc:"The log: embedded NATS JetStream by default, or an external cluster."`
	Ingest          Ingest   `yaml:"ingest" doc:"HTTP ingest limits and idempotency."`
	Auth            Auth     `yaml:"auth" doc:"Bearer-token authentication. Off when no token is configured."`
	Kafka           Kafka    `yaml:"kafka" doc:"The Kafka wire-protocol listener: Kafka clients produce to and consume from the topics. Off when listen is empty."`
	Topics          []Topic  `yaml:"topics" doc:"Topics: each is a partitioned, replicated log of typed events." required:"true"`
	Views           []View   `yaml:"views" doc:"Windowed views computed by both the speed and the batch layer."`
	Lake            Lake     `yaml:"lake" doc:"The Parquet lake written by the batch layer."`
	Sinks           []Sink   `yaml:"sinks" doc:"Deliveries of topics and views to external stores."`
	SQL             SQL      `yaml:"sql" doc:"Read-only SQL (POST /v1/sql, lambdaflow sql) over the lake, the views and the DuckDB sink's tables: its limits."`

	// File is the path the pipeline was loaded from, for messages.
	File string `yaml:"-"`
}

// HTTP configures the single HTTP listener. The limits are what a server
// facing the internet needs against slow and idle clients; see
// internal/httpapi.Server.
type HTTP struct {
	Listen            string   `yaml:"listen" default:"127.0.0.1:8080" doc:"host:port to listen on."`
	ReadHeaderTimeout Duration `yaml:"read_header_timeout" default:"10s" doc:"Longest a client may take to send a request's headers."`
	ReadTimeout       Duration `yaml:"read_timeout" default:"1m" doc:"Longest a client may take to send a whole request, body included."`
	WriteTimeout      Duration `yaml:"write_timeout" default:"1m" doc:"Longest the server may take to answer a request, from the end of its headers to the last byte of the answer."`
	IdleTimeout       Duration `yaml:"idle_timeout" default:"2m" doc:"How long a keep-alive connection may wait for its next request."`
	MaxConnections    int      `yaml:"max_connections" default:"10000" doc:"Most open client connections. At the limit a new connection closes the one idle (or stalled sending its request) the longest, or is answered 503 when every connection is busy."`
	AccessLog         bool     `yaml:"access_log" doc:"Log every request once answered (message \"http request\": method, path with query, status, bytes, duration_ms, remote, user_agent; never a header, so never a token); 5xx answers as warnings. Successful /healthz, /readyz and /metrics answers are left out, their refusals logged as information."`
}

// SQL bounds the read-only SQL queries. A request may ask for less, never
// for more.
type SQL struct {
	Timeout     Duration `yaml:"timeout" default:"30s" doc:"Longest a query runs; past it the query is cancelled and answered 422 naming the limit."`
	MaxRows     int      `yaml:"max_rows" default:"10000" doc:"Most rows in an answer; a query that returns more is answered 422 naming the limit (add a LIMIT)."`
	MaxBytes    ByteSize `yaml:"max_bytes" default:"16MiB" doc:"Largest answer (its JSON encoding); a larger one is answered 422 naming the limit."`
	MemoryLimit ByteSize `yaml:"memory_limit" default:"1GiB" doc:"Memory the SQL engine may use for one query (DuckDB's memory_limit); past it the query fails."`
	LakeCache   ByteSize `yaml:"lake_cache" default:"4GiB" doc:"A lake on object storage only: disk under data_dir/sql-lake for local copies of the lake files queries read, kept for later queries (least recently read go first). A query whose lake tables need more is answered 422 naming it."`
}

// Broker configures the log.
type Broker struct {
	URL      string   `yaml:"url" doc:"Empty: run an embedded nats-server under data_dir. Otherwise comma-separated nats:// URLs of an external cluster."`
	Replicas int      `yaml:"replicas" default:"1" enum:"1,3" doc:"Replicas of every partition stream (1 or 3)."`
	Sync     string   `yaml:"sync" default:"always" enum:"always,interval" doc:"Embedded server only: 'always' fsyncs every append before it is acknowledged; 'interval' lets JetStream sync every two minutes (faster, loses acknowledged events on power failure)."`
	Listen   string   `yaml:"listen" doc:"Embedded server only: host:port where other processes (roles, nats CLI) reach it. Empty: in-process only."`
	Creds    string   `yaml:"creds" doc:"External cluster: path to a NATS credentials file."`
	User     string   `yaml:"user" doc:"External cluster: user name."`
	Password string   `yaml:"password" doc:"External cluster: password."`
	Token    string   `yaml:"token" doc:"External cluster: authentication token."`
	TLS      TLS      `yaml:"tls" doc:"External cluster: TLS settings."`
	Prefix   string   `yaml:"prefix" default:"LF" doc:"Prefix of stream and subject names, so several pipelines share one cluster."`
	Cluster  Cluster  `yaml:"cluster" doc:"Embedded server only: join the embedded servers of several Lambdaflow processes into one NATS cluster, so the log is replicated across them without a separate NATS deployment."`
	_        struct{} `yaml:"-"`
}

// Cluster makes the embedded server one node of a NATS cluster.
type Cluster struct {
	Listen string   `yaml:"listen" doc:"host:port where this node accepts routes from the other nodes, e.g. 0.0.0.0:6222. Empty: not clustered."`
	Routes []string `yaml:"routes" doc:"The other nodes' route addresses, nats-route://host:port (listing this node too is harmless). Each node needs at least one that is up to join."`
	Name   string   `yaml:"name" default:"lambdaflow" doc:"Cluster name, the same on every node."`
	Node   string   `yaml:"node" doc:"This node's name: unique in the cluster and the same across restarts (JetStream knows its peers by it). Default: the host name."`
}

// TLS configures a TLS client.
type TLS struct {
	CA   string `yaml:"ca" doc:"PEM file of the CA that signed the servers' certificates."`
	Cert string `yaml:"cert" doc:"PEM client certificate, for mutual TLS."`
	Key  string `yaml:"key" doc:"PEM client key, for mutual TLS."`
}

// Ingest configures HTTP ingest.
type Ingest struct {
	MaxBodyBytes int64    `yaml:"max_body_bytes" default:"16777216" doc:"Largest request body accepted; larger requests get 413."`
	MaxInFlight  int      `yaml:"max_in_flight" default:"65536" doc:"Events decoded but not yet acknowledged, across requests; past it ingest answers 429 with Retry-After."`
	DedupWindow  Duration `yaml:"dedup_window" default:"10m" doc:"How long an event id is remembered, across restarts; a repeat within it is answered duplicate and not appended."`
	DedupMaxIDs  int      `yaml:"dedup_max_ids" default:"5000000" doc:"Most ids remembered per topic; the oldest are forgotten first."`
	Linger       Duration `yaml:"linger" default:"1ms" doc:"Longest an event waits to be grouped with requests still arriving into one log entry; with none arriving it is appended at once."`
	MaxBatch     int      `yaml:"max_batch" default:"1000" doc:"Most events in one log entry."`
}

// Kafka configures the Kafka wire-protocol listener.
type Kafka struct {
	Listen          string    `yaml:"listen" doc:"host:port of the Kafka listener. Empty: off."`
	Advertised      string    `yaml:"advertised" doc:"host:port that clients are told to connect to (Metadata, FindCoordinator). Default: the listen address (with the bound port when listen asks for port 0)."`
	NodeID          int       `yaml:"node_id" doc:"Broker id this process reports to clients; give each ingest process its own when several share one advertised address space."`
	TLS             ServerTLS `yaml:"tls" doc:"TLS for the Kafka listener. Off when cert is empty."`
	MaxRequestBytes ByteSize  `yaml:"max_request_bytes" default:"16MiB" doc:"Largest Kafka request accepted; a larger one closes the connection (as Kafka's socket.request.max.bytes)."`
	MaxFetchBytes   ByteSize  `yaml:"max_fetch_bytes" default:"8MiB" doc:"Most record bytes in one Fetch response, whatever the client asks for."`
	MaxConnections  int       `yaml:"max_connections" default:"1024" doc:"Open Kafka connections at most; further ones are closed at once."`
}

// ServerTLS configures a TLS server.
type ServerTLS struct {
	Cert     string `yaml:"cert" doc:"PEM certificate chain of the server."`
	Key      string `yaml:"key" doc:"PEM private key of the server."`
	ClientCA string `yaml:"client_ca" doc:"PEM CA file: when set, clients must present a certificate it signed (mutual TLS)."`
}

// Auth configures bearer tokens and which web pages may send requests that
// change state. The rules are in package internal/access.
type Auth struct {
	ReadTokens     []string `yaml:"read_tokens" doc:"Tokens accepted for reads (queries, topics, lag, the message browser, stats, metrics, the console). Empty: reads are open."`
	AdminTokens    []string `yaml:"admin_tokens" doc:"Tokens accepted for administration (recompute views, replay dead letters) and for reads. Without any: administration is open only while the pipeline has no token at all."`
	AllowedOrigins []string `yaml:"allowed_origins" doc:"Web origins (scheme://host[:port]) besides the server's own from which browsers may send requests that change state (publish, recompute, replay); others are refused with 403."`
}

// Topic is a partitioned log of events of one schema.
type Topic struct {
	Name        string       `yaml:"name" required:"true" doc:"Topic name: lowercase letters, digits and '_'; used in stream, file and table names."`
	Partitions  int          `yaml:"partitions" default:"1" doc:"Number of partitions (each is one JetStream stream), 1 to 1024."`
	Retention   Duration     `yaml:"retention" default:"168h" doc:"How long the log keeps events."`
	MaxBytes    ByteSize     `yaml:"max_bytes" doc:"Most bytes the log keeps per partition (e.g. 10GiB); 0 means no limit."`
	Key         string       `yaml:"key" doc:"Field whose value picks the partition; empty spreads by event id."`
	Time        string       `yaml:"time" doc:"Event-time field (timestamp: RFC 3339, or an epoch number in time_unit). Empty: ingest time."`
	TimeUnit    string       `yaml:"time_unit" doc:"Unit of timestamps sent as numbers, for every timestamp field of the topic: s, ms or us. Unset: milliseconds, and a number that would be before 1973-03-03 as milliseconds (as epoch seconds are) is refused rather than guessed; set ms to accept such times."`
	MaxFuture   Duration     `yaml:"max_future" default:"1h" doc:"How far ahead of its ingest time an event's event time may be; later events are refused (400), so that a wrong clock cannot push watermarks and horizons into the future."`
	Schema      event.Schema `yaml:"schema" required:"true" doc:"Field name to type: string, long, int, double, bool, timestamp. A trailing '?' makes a field optional; or {type: T, required: false}."`
	WriteTokens []string     `yaml:"write_tokens" doc:"Tokens accepted for writes to this topic. Empty: writes are open."`
	Lake        TopicLake    `yaml:"lake" doc:"How the topic's files are laid out in the lake."`
	ReadTokens  []string     `yaml:"read_tokens" doc:"Tokens that may read this topic, and only it, through SQL (POST /v1/sql): its lake table, the views over it and their sink tables. auth.read_tokens read everything; with auth.read_tokens empty reads are open."`
	Sources     []Source     `yaml:"sources" doc:"The same topic in other sites (data centres), pulled into this one: each event keeps its id and gets its origin in the field _site, counted once across link failures and restarts. See docs/sites.md."`
	Pos         Pos          `yaml:"-"`
}

// TopicLake configures one topic's part of the lake.
type TopicLake struct {
	Partitioning string   `yaml:"partitioning" default:"hourly" enum:"hourly,daily,monthly" doc:"hourly: a directory per event-time hour (dt=YYYY-MM-DD/hour=HH), at most one file per hour once compacted; daily: a directory per day (dt=YYYY-MM-DD), at most one file per day, for topics with few events per hour; monthly: a directory per calendar month (month=YYYY-MM), at most one file per month, for topics with a few thousand events a day or fewer."`
	Retention    Duration `yaml:"retention" doc:"How long the lake keeps the topic's events, by event time: a period (hour, day or month) whose end is this long ago or longer leaves the lake at the next compaction pass (its files are deleted 10 minutes later, as replaced files are), and batch runs then recompute only the windows that start later (older windows keep their rows). Unset or 0: the lake keeps every event. At least 1h."`
}

// Lake partitionings (TopicLake.Partitioning).
const (
	LakeHourly  = "hourly"
	LakeDaily   = "daily"
	LakeMonthly = "monthly"
)

// SiteField is the field a topic with sources gets after its own: the site
// each event was first accepted in (a string; this pipeline's site for
// events its ingest accepts). Views may group by it and filter on it; the
// lake and sinks store it like the topic's other fields.
const SiteField = "_site"

// Source is another site's topic that a topic pulls in.
type Source struct {
	Site   string     `yaml:"site" required:"true" pattern:"^[a-z][a-z0-9_-]{0,62}$" rule:"1 to 63 lowercase letters, digits, '_' or '-', starting with a letter" doc:"The other site's name (its pipeline's site, which defaults to its pipeline name). Names the link: its lag is consumer mirror.<site>.<topic>."`
	URL    string     `yaml:"url" required:"true" doc:"The other site's NATS: comma-separated nats:// (or tls://) URLs of its external cluster, or of its embedded server's broker.listen."`
	Topic  string     `yaml:"topic" doc:"The topic's name at the other site. Default: this topic's name."`
	Prefix string     `yaml:"prefix" default:"LF" doc:"The other site's broker.prefix."`
	Auth   SourceAuth `yaml:"auth" doc:"Credentials for the other site's NATS; reading is all the link does there."`
	TLS    TLS        `yaml:"tls" doc:"TLS settings for the other site's NATS."`
	Pos    Pos        `yaml:"-"`
}

// SourceAuth are the credentials of a link to another site's NATS.
type SourceAuth struct {
	Creds    string `yaml:"creds" doc:"Path to a NATS credentials file."`
	User     string `yaml:"user" doc:"User name."`
	Password string `yaml:"password" doc:"Password."`
	Token    string `yaml:"token" doc:"Authentication token."`
}

// SiteName is the pipeline's site: site, or the pipeline's name.
func (p *Pipeline) SiteName() string {
	if p.Site != "" {
		return p.Site
	}
	return p.Name
}

// SourceTopicName is the name of the topic at the other site.
func (s *Source) SourceTopicName(local string) string {
	if s.Topic != "" {
		return s.Topic
	}
	return local
}

// Consumer is the name the link's positions and lag go by:
// mirror.<site>.<topic>, topic being the local topic.
func (s *Source) Consumer(local string) string { return "mirror." + s.Site + "." + local }

// View is a windowed aggregation of one topic.
type View struct {
	Name       string     `yaml:"name" required:"true" doc:"View name: lowercase letters, digits and '_'; used in table and index names."`
	From       string     `yaml:"from" required:"true" doc:"The topic the view reads."`
	Where      string     `yaml:"where" doc:"Boolean expression over the event's fields; events for which it is false are skipped."`
	GroupBy    []string   `yaml:"group_by" doc:"Fields the view groups by."`
	Window     Window     `yaml:"window" required:"true" doc:"Event-time window."`
	Aggregates Aggregates `yaml:"aggregates" required:"true" doc:"Output column name to aggregate call, e.g. {events: count(), p95_cpu: 'quantile(cpu, 0.95)'}."`
	Batch      ViewBatch  `yaml:"batch" doc:"Batch-layer recomputation of the view."`
	Emit       ViewEmit   `yaml:"emit" doc:"How the speed layer shows the view's open windows."`
	Retention  Duration   `yaml:"retention" default:"24h" doc:"How long the speed layer keeps final windows after they close."`
	Pos        Pos        `yaml:"-"`
}

// Window defines how events are assigned to windows.
type Window struct {
	Type     string   `yaml:"type" required:"true" enum:"tumbling,hopping,session" doc:"tumbling (size), hopping (size, slide) or session (gap)."`
	Size     Duration `yaml:"size" doc:"Window length (tumbling, hopping)."`
	Slide    Duration `yaml:"slide" doc:"Distance between window starts (hopping)."`
	Gap      Duration `yaml:"gap" doc:"Inactivity that closes a session (session)."`
	Lateness Duration `yaml:"lateness" doc:"How far behind the newest event time an event may arrive and still count in the speed layer."`
}

// ViewBatch configures the batch recomputation of a view.
type ViewBatch struct {
	Schedule string `yaml:"schedule" doc:"Cron expression (5 fields, or @every 10m) on which closed windows are recomputed from the lake. Empty: only on request."`
}

// ViewEmit says how often the speed layer shows the current value of an
// open window (ViewEmit.Open).
type ViewEmit struct {
	Interval Duration `yaml:"interval" default:"1s" doc:"How often at most the row of an open window is refreshed, per row: in queries, and as an upsert with final: false in the view's log topic and so in its sinks (the final row and batch corrections overwrite it). A window's first change shows at once, later ones at most this often. At least 100ms; 0 appends no open windows to the log topic (sinks get final rows only) and refreshes them in queries every 1s."`
}

// Open windows: the default and smallest emit.interval. The speed layer
// looks at the rows waiting for their interval at least every 100ms, so a
// smaller interval could not be kept.
const (
	DefaultEmitInterval = time.Second
	MinEmitInterval     = 100 * time.Millisecond
)

// Open returns how often at most the speed layer shows the row of an open
// window, and whether it appends those rows to the view's log topic (for
// sinks) besides showing them in the serving store.
func (e ViewEmit) Open() (every time.Duration, toTopic bool) {
	if e.Interval <= 0 {
		return DefaultEmitInterval, false
	}
	return e.Interval.D(), true
}

// Lake configures the Parquet lake: in a local directory, or on
// S3-compatible object storage (url), with the same layout.
type Lake struct {
	Dir             string   `yaml:"dir" doc:"Lake root directory; default <data_dir>/lake. Not with url."`
	URL             string   `yaml:"url" doc:"The lake on S3-compatible object storage instead of a directory: s3://bucket/prefix, same layout, read by processes on any machine; manifest commits are create-only, so several writers never corrupt it."`
	Endpoint        string   `yaml:"endpoint" doc:"Object storage: the server's URL for servers other than AWS S3 (MinIO, Ceph, SeaweedFS, versitygw…), e.g. http://127.0.0.1:9000. Empty: AWS S3."`
	Region          string   `yaml:"region" default:"us-east-1" doc:"Object storage: the bucket's region."`
	AccessKeyID     string   `yaml:"access_key_id" doc:"Object storage: access key, e.g. ${AWS_ACCESS_KEY_ID}. Empty together with secret_access_key: the AWS SDK's default credentials (environment, shared files, web identity, instance role)."`
	SecretAccessKey string   `yaml:"secret_access_key" doc:"Object storage: secret key, e.g. ${AWS_SECRET_ACCESS_KEY}."`
	PathStyle       bool     `yaml:"path_style" doc:"Object storage: address the bucket as endpoint/bucket/key rather than bucket.endpoint/key (most servers other than AWS need it)."`
	Cache           ByteSize `yaml:"cache" default:"64MiB" doc:"Object storage: memory for lake files fetched, kept for later reads (the views over a topic recompute the same spans, and each scheduled run much of the last one's); the least recently read go first, a file over an eighth of it is not kept; 0 keeps none. A lake in a directory is read through the operating system's page cache instead."`
	Buffer          ByteSize `yaml:"buffer" default:"128MiB" doc:"Memory for events read from the log and not yet in lake files, for all topics of the process: past half of it the largest buffer is written out, at it the lake writer waits for room."`
	Roll            LakeRoll `yaml:"roll" doc:"When the events read are written to lake files."`
	Compact         Compact  `yaml:"compact" doc:"Compaction: the files of one period (hour or day) merged into one."`
}

// LakeRoll says when the events read are written to lake files.
type LakeRoll struct {
	MaxRows int      `yaml:"max_rows" default:"1000000" doc:"Rows buffered (of one topic) after which they are written."`
	MaxAge  Duration `yaml:"max_age" default:"5m" doc:"Longest an event read waits in memory before it is written; a burst of events (a backfill) is written as soon as it has been read."`
}

// Compact configures compaction.
type Compact struct {
	MinFiles int      `yaml:"min_files" default:"4" doc:"Compact a period that still gets events once it holds this many files, not counting files of 16,384 rows or more and more than twice the rows of the smaller files together (they wait, so that each row is rewritten a few times, not at every merge); a period the topic's events have moved past is compacted once it holds two."`
	Interval Duration `yaml:"interval" default:"10m" doc:"How often to look for periods to compact (also soon after a flush adds files to a period that had some)."`
}

// Sink delivers topics and views to an external store. The keys every sink
// has are fields here; the keys of its type (a DSN, hosts, URLs…) are
// declared by the type (see SinkType) and decoded into Config, written
// beside the common keys in the file.
type Sink struct {
	Name string   `yaml:"name" required:"true" doc:"Sink name; also its consumer and dead-letter topic name."`
	Type string   `yaml:"type" required:"true" enum:"$sink_types" doc:"Target kind."`
	From []string `yaml:"from" required:"true" doc:"Topics and views this sink delivers."`
	// Config is the type's own keys: a pointer to the struct its SinkType's
	// NewConfig returns, with defaults applied and the file's values
	// decoded. Nil when the type is unknown.
	Config any       `yaml:"-" inline:"sink_config"`
	Create bool      `yaml:"create" default:"true" doc:"Create keyspaces, tables, indices and templates that are missing."`
	Batch  SinkBatch `yaml:"batch" doc:"Batching of writes."`
	Pos    Pos       `yaml:"-"`
}

// SinkBatch configures sink batching and retry.
type SinkBatch struct {
	MaxRows    int      `yaml:"max_rows" default:"5000" doc:"Most rows in one write."`
	MaxWait    Duration `yaml:"max_wait" default:"500ms" doc:"Longest a row waits for its batch to fill."`
	MaxRetries int      `yaml:"max_retries" default:"10" doc:"Retries of a transient failure before the batch is retried from the log."`
}

// Pos is a position in the pipeline file. Schema fields carry one too, so
// the type lives with them.
type Pos = event.Pos

// Duration is a time.Duration written as "90s", "5m", "168h" or "7d".
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ByteSize is a size in bytes written as 1024, "64KiB", "10MB" or "2GiB".
type ByteSize int64
