package cassandra

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// Config is the keys of a cassandra sink.
type Config struct {
	Hosts    []string `yaml:"hosts" required:"true" doc:"cassandra: contact points host:port (port 9042 when left out)."`
	Keyspace string   `yaml:"keyspace" required:"true" pattern:"^[a-z][a-z0-9_]{0,47}$" rule:"1 to 48 lowercase letters, digits or '_', starting with a letter" doc:"cassandra: keyspace."`
	// Consistency names a gocql consistency level.
	Consistency string             `yaml:"consistency" default:"local_quorum" enum:"any,one,two,three,quorum,all,local_quorum,each_quorum,local_one" doc:"cassandra: write consistency."`
	TTL         pipelines.Duration `yaml:"ttl" doc:"cassandra: time to live of written rows; 0 keeps them."`
}

// Kind is the cassandra sink: tables in an Apache Cassandra keyspace.
func Kind() sinks.Kind {
	return sinks.Kind{
		SinkType: pipelines.SinkType{
			Name:      "cassandra",
			Doc:       "tables in an Apache Cassandra keyspace",
			NewConfig: func() any { return new(Config) },
			Check:     func(cfg any, c pipelines.SinkCheck) { cfg.(*Config).check(c) },
		},
		Open: func(ctx context.Context, _ *pipelines.Pipeline, spec *pipelines.Sink, logger *slog.Logger) (sinks.Target, error) {
			return New(ctx, spec, logger)
		},
	}
}

// check checks what the tags cannot: each host, and the TTL's sign.
func (cfg *Config) check(c pipelines.SinkCheck) {
	for j, h := range cfg.Hosts {
		key := fmt.Sprintf("hosts[%d]", j)
		if h == "" {
			c.Errorf(key, "must not be empty")
		} else if strings.Contains(h, ":") {
			c.HostPort(key, h)
		}
	}
	if cfg.TTL < 0 {
		c.Errorf("ttl", "must not be negative, got %s", cfg.TTL)
	}
}
