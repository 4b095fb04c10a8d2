package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/lambdaflow/lambdaflow/bench/measure"
)

// kafkaBroker is the single-node Apache Kafka broker (KRaft) of
// deploy/bench/kafka-broker.sh, started on free loopback ports from an
// empty log, with Kafka's defaults (one broker: replication factor 1).
type kafkaBroker struct {
	env       *peersEnv
	vars      []string
	bootstrap string
}

func startKafka(ctx context.Context, env *peersEnv) (*kafkaBroker, error) {
	port, err := measure.FreePort()
	if err != nil {
		return nil, err
	}
	cport, err := measure.FreePort()
	if err != nil {
		return nil, err
	}
	k := &kafkaBroker{env: env, bootstrap: "127.0.0.1:" + strconv.Itoa(port), vars: []string{
		"LF_SERVICES_DIR=" + filepath.Dir(env.peers), // the broker lives beside the peers' folder
		"LF_BENCH_KAFKA_PORT=" + strconv.Itoa(port),
		"LF_BENCH_KAFKA_CONTROLLER_PORT=" + strconv.Itoa(cport),
	}}
	if _, err := measure.Command(ctx, env.repo, k.vars, "deploy/bench/kafka-broker.sh", "start"); err != nil {
		return nil, fmt.Errorf("starting Kafka: %w", err)
	}
	return k, nil
}

// stop ends the broker and waits for it.
func (k *kafkaBroker) stop() error {
	_, err := measure.Command(context.Background(), k.env.repo, k.vars, "deploy/bench/kafka-broker.sh", "stop")
	return err
}

// kafkaLoad runs KafkaLoad.java (bench/peers/java) with args and returns
// its result fields.
func kafkaLoad(ctx context.Context, env *peersEnv, args ...string) (map[string]string, error) {
	cp := filepath.Join(env.peers, "classes", "kafka") + ":" + filepath.Join(env.kafkaLib, "*")
	out, err := measure.Command(ctx, "", nil, env.java, append([]string{"-Xmx1g", "-cp", cp, "KafkaLoad"}, args...)...)
	if err != nil {
		return nil, err
	}
	if args[0] == "create" {
		return nil, nil
	}
	return measure.Fields(out, "result")
}
