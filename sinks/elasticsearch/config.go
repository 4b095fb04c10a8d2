package elasticsearch

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// Config is the keys of an elasticsearch sink.
type Config struct {
	URLs     []string `yaml:"urls" required:"true" doc:"elasticsearch: node URLs."`
	Index    string   `yaml:"index" doc:"elasticsearch: index name pattern; {name} is the topic or view, {yyyy.MM.dd} a date from event time. Default {name}."`
	Username string   `yaml:"username" doc:"elasticsearch: basic-auth user."`
	Password string   `yaml:"password" doc:"elasticsearch: basic-auth password."`
}

// Kind is the elasticsearch sink: indices in Elasticsearch or OpenSearch.
func Kind() sinks.Kind {
	return sinks.Kind{
		SinkType: pipelines.SinkType{
			Name:      "elasticsearch",
			Doc:       "indices in Elasticsearch 7 or OpenSearch",
			NewConfig: func() any { return new(Config) },
			Check:     func(cfg any, c pipelines.SinkCheck) { cfg.(*Config).check(c) },
		},
		Open: func(ctx context.Context, _ *pipelines.Pipeline, spec *pipelines.Sink, logger *slog.Logger) (sinks.Target, error) {
			return New(ctx, spec, logger)
		},
	}
}

// check checks what the tags cannot: the URLs' form, a user without a
// password, an index pattern written empty.
func (cfg *Config) check(c pipelines.SinkCheck) {
	for j, u := range cfg.URLs {
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" || pu.Scheme != "http" && pu.Scheme != "https" {
			c.Errorf(fmt.Sprintf("urls[%d]", j), "must be an http:// or https:// URL, got %s", pipelines.Quote(u))
		}
	}
	if cfg.Username != "" && cfg.Password == "" {
		c.Errorf("password", "is required with username")
	}
	if c.Present("index") && cfg.Index == "" {
		c.Errorf("index", "must not be empty")
	}
}
