package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
)

// lakeAt is where the rounds' lakes live: the pipeline's default (each
// round's data directory), or with -lake s3 a prefix of an S3-compatible
// bucket, one per round. The harness reads the lake through the lake's own
// store either way, so both are measured the same.
type lakeAt struct {
	s3   *lakestore.Config // nil: a directory
	base string            // s3://bucket/backfill-<stamp>/: the rounds' prefixes are under it
}

// newLakeAt reads -lake. Object storage is named by the LF_TEST_S3_*
// variables that deploy/dev/services.sh env prints (the dev server the
// tests use, or any S3-compatible server with a bucket of its own).
func newLakeAt(kind string, now time.Time) (lakeAt, error) {
	switch kind {
	case "", "dir":
		return lakeAt{}, nil
	case "s3":
	default:
		return lakeAt{}, fmt.Errorf("-lake %q: want dir or s3", kind)
	}
	cfg := &lakestore.Config{
		Endpoint:        os.Getenv("LF_TEST_S3_ENDPOINT"),
		Region:          os.Getenv("LF_TEST_S3_REGION"),
		AccessKeyID:     os.Getenv("LF_TEST_S3_ACCESS_KEY"),
		SecretAccessKey: os.Getenv("LF_TEST_S3_SECRET_KEY"),
		PathStyle:       true,
	}
	bucket := os.Getenv("LF_TEST_S3_BUCKET")
	if cfg.Endpoint == "" || bucket == "" || cfg.AccessKeyID == "" || cfg.SecretAccessKey == "" {
		return lakeAt{}, errors.New("-lake s3: LF_TEST_S3_ENDPOINT, LF_TEST_S3_BUCKET, LF_TEST_S3_ACCESS_KEY and LF_TEST_S3_SECRET_KEY must name the server " +
			`(deploy/dev/services.sh up s3; eval "$(deploy/dev/services.sh env)")`)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return lakeAt{s3: cfg, base: "s3://" + bucket + "/backfill-" + strconv.FormatInt(now.UnixNano(), 36) + "/"}, nil
}

func (l lakeAt) String() string {
	if l.s3 == nil {
		return "a directory"
	}
	return "object storage (" + l.base + ")"
}

// pipelineLake is what the pipeline file gets for the lake: nothing for a
// directory; for object storage its keys, the URL from the round's
// environment (roundEnv).
func (l lakeAt) pipelineLake() string {
	if l.s3 == nil {
		return ""
	}
	return "\nlake:\n" +
		"  url: ${BACKFILL_LAKE_URL}\n" +
		"  endpoint: ${LF_TEST_S3_ENDPOINT}\n" +
		"  region: " + l.s3.Region + "\n" +
		"  access_key_id: ${LF_TEST_S3_ACCESS_KEY}\n" +
		"  secret_access_key: ${LF_TEST_S3_SECRET_KEY}\n" +
		"  path_style: true\n"
}

func (l lakeAt) roundURL(round int) string { return l.base + "round" + strconv.Itoa(round) + "/" }

// roundEnv is the environment of round's server.
func (l lakeAt) roundEnv(round int) []string {
	if l.s3 == nil {
		return nil
	}
	return []string{"BACKFILL_LAKE_URL=" + l.roundURL(round)}
}

// open returns the store of round's lake, whose data directory is dataDir.
func (l lakeAt) open(ctx context.Context, dataDir string, round int) (lakestore.Store, error) {
	if l.s3 == nil {
		return lakestore.NewDir(filepath.Join(dataDir, "lake"))
	}
	cfg := *l.s3
	cfg.URL = l.roundURL(round)
	return lakestore.Open(ctx, cfg)
}

// remove deletes everything round's lake holds on object storage (a
// directory goes with the round's data directory).
func (l lakeAt) remove(ctx context.Context, round int) error {
	if l.s3 == nil {
		return nil
	}
	st, err := l.open(ctx, "", round)
	if err != nil {
		return err
	}
	defer lakestore.CloseIdle(st)
	pending, err := st.Unfinished(ctx, "")
	if err != nil {
		return err
	}
	for _, p := range pending {
		if err := st.Discard(ctx, p); err != nil {
			return err
		}
	}
	es, err := st.List(ctx, "", "")
	if err != nil {
		return err
	}
	keys := make([]string, len(es))
	for i, e := range es {
		keys[i] = e.Key
	}
	return st.Delete(ctx, keys...)
}

// lakeStats counts topic's data files and their bytes in the lake (keys
// with a part starting with "." or "_" are not data) and its manifest
// log's size (its records and checkpoints under _manifest/, parts
// included) and version
// (its newest record, <20 digits>.json).
func lakeStats(ctx context.Context, st lakestore.Store, topic string, res *lakeState) error {
	*res = lakeState{}
	es, err := st.List(ctx, topic+"/", "")
	if err != nil {
		return err
	}
	for _, e := range es {
		rel := strings.TrimPrefix(e.Key, topic+"/")
		if name, ok := strings.CutPrefix(rel, "_manifest/"); ok {
			if strings.HasPrefix(name[strings.LastIndexByte(name, '/')+1:], ".") {
				continue // being written
			}
			res.manifestBytes += e.Size
			if v, err := strconv.ParseInt(strings.TrimSuffix(name, ".json"), 10, 64); err == nil && len(name) == 25 {
				res.manifestVersion = max(res.manifestVersion, v)
			}
			continue
		}
		if !strings.HasSuffix(rel, ".parquet") || hiddenPart(rel) {
			continue
		}
		res.files++
		res.lakeBytes += e.Size
	}
	if res.manifestVersion == 0 {
		return fmt.Errorf("%s%s/_manifest/: no manifest log", st, topic)
	}
	return nil
}

// hiddenPart tells whether a part of a key starts with "." or "_", as
// Hive-style readers skip such files and directories.
func hiddenPart(key string) bool {
	for part := range strings.SplitSeq(key, "/") {
		if strings.HasPrefix(part, ".") || strings.HasPrefix(part, "_") {
			return true
		}
	}
	return false
}

// localLake returns a directory holding topic's lake files for readers
// of files (DuckDB): the lake's own directory, or for object storage a
// copy of its data files under dir.
func localLake(ctx context.Context, st lakestore.Store, topic, dir string) (string, error) {
	if d, ok := st.(*lakestore.Dir); ok {
		return d.Path(topic), nil
	}
	es, err := st.List(ctx, topic+"/", "")
	if err != nil {
		return "", err
	}
	for _, e := range es {
		if !strings.HasSuffix(e.Key, ".parquet") || hiddenPart(e.Key) {
			continue
		}
		b, err := st.ReadFile(ctx, e.Key)
		if err != nil {
			return "", err
		}
		p := filepath.Join(dir, filepath.FromSlash(e.Key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, filepath.FromSlash(path.Clean(topic))), nil
}
