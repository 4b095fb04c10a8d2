package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lambdaflow/lambdaflow/bench/measure"
)

// check verifies exactly what the consumer left once its workers stopped:
// the view's counts add up to the backlog (read by a fresh serving process
// from the workers' checkpoints), the lake holds every event id once, the
// sink table holds every event id once.
func (b *bench) check(ctx context.Context, c consumer, dir string, env []string, pgDSN string) error {
	want := int64(b.o.events)
	switch c.name {
	case "sink":
		return checkSink(ctx, pgDSN, want)
	case "speed", "lake":
		s, err := measure.StartServer(ctx, measure.ServerConfig{Bin: b.o.bin, Pipeline: b.o.pipeline,
			Dir: filepath.Join(dir, "checker"), Roles: "serve", Env: env})
		if err != nil {
			return fmt.Errorf("checker: %w", err)
		}
		defer s.Stop()
		if c.name == "speed" {
			return checkView(ctx, s, want)
		}
		return checkLake(ctx, s, want)
	}
	return fmt.Errorf("no check for %s", c.name)
}

// checkView polls the view until its events add up to want (the serving
// process loads the partitions' checkpoints as it starts), at most 60 s.
func checkView(ctx context.Context, s *measure.Server, want int64) error {
	deadline := time.Now().Add(time.Minute)
	for {
		var v struct {
			Rows []struct {
				Events int64 `json:"events"`
			} `json:"rows"`
		}
		if err := s.GetJSON(ctx, "/v1/views/by_region", &v); err != nil {
			return err
		}
		var sum int64
		for _, r := range v.Rows {
			sum += r.Events
		}
		if sum == want {
			return nil
		}
		if time.Now().After(deadline) || sum > want {
			return fmt.Errorf("view by_region counts %d events in %d rows, want %d", sum, len(v.Rows), want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// checkLake has the serving process's SQL (DuckDB over the lake files of
// the committed manifest) count the lake's rows and distinct event ids.
func checkLake(ctx context.Context, s *measure.Server, want int64) error {
	body, _ := json.Marshal(map[string]string{"sql": "SELECT count(*), count(DISTINCT _id) FROM lake.metrics"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v1/sql", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("POST /v1/sql: %d %s", resp.StatusCode, data)
	}
	var ans struct {
		Rows [][]int64 `json:"rows"`
	}
	if err := json.Unmarshal(data, &ans); err != nil {
		return fmt.Errorf("POST /v1/sql: %w: %s", err, data)
	}
	if len(ans.Rows) != 1 || len(ans.Rows[0]) != 2 || ans.Rows[0][0] != want || ans.Rows[0][1] != want {
		return fmt.Errorf("the lake holds %s (rows, distinct ids), want %d of each", data, want)
	}
	return nil
}

// checkSink counts the sink table's rows and distinct event ids.
func checkSink(ctx context.Context, dsn string, want int64) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	var rows, ids int64
	if err := conn.QueryRow(ctx, "SELECT count(*), count(DISTINCT _id) FROM metrics").Scan(&rows, &ids); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if rows != want || ids != want {
		return fmt.Errorf("the sink table holds %d rows, %d distinct ids, want %d of each", rows, ids, want)
	}
	return nil
}
