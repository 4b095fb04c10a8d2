package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/lambdaflow/lambdaflow/bench/measure"
)

// kafkaBroker is one Apache Kafka broker in KRaft mode (broker and
// controller in one JVM) on loopback ports, with its data in a directory
// of its own. Its defaults are Kafka's, except replication factors of 1
// for the internal topics (there is one broker).
type kafkaBroker struct {
	cmd       *exec.Cmd
	done      chan error
	bootstrap string
	log       string
}

func startKafka(ctx context.Context, env *peersEnv, dir string) (*kafkaBroker, error) {
	port, err := measure.FreePort()
	if err != nil {
		return nil, err
	}
	cport, err := measure.FreePort()
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	props := filepath.Join(dir, "server.properties")
	conf := fmt.Sprintf(`process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:%[2]d
listeners=PLAINTEXT://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[1]d
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=%[3]s
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
`, port, cport, filepath.Join(dir, "data"))
	if err := os.WriteFile(props, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	id := make([]byte, 16)
	rand.Read(id)
	cp := filepath.Join(env.peers, "kafka", "lib", "*")
	if _, err := measure.Command(ctx, dir, nil, env.java, "-cp", cp, "kafka.tools.StorageTool", "format",
		"-t", base64.RawURLEncoding.EncodeToString(id), "-c", props); err != nil {
		return nil, fmt.Errorf("formatting Kafka's storage: %w", err)
	}
	logPath := filepath.Join(dir, "kafka.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	// Kafka's own start script gives the broker a 1 GiB heap and G1.
	cmd := exec.Command(env.java, "-Xms1g", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
		"-Djava.awt.headless=true", "-cp", cp, "kafka.Kafka", props)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	k := &kafkaBroker{cmd: cmd, done: make(chan error, 1), bootstrap: "127.0.0.1:" + strconv.Itoa(port), log: logPath}
	go func() { k.done <- cmd.Wait() }()
	alive := func() error {
		select {
		case err := <-k.done:
			k.done <- err
			return fmt.Errorf("kafka exited during startup (%v); see %s", err, logPath)
		default:
			return nil
		}
	}
	if err := measure.WaitPort(ctx, port, 120*time.Second, alive); err != nil {
		k.stop()
		return nil, err
	}
	return k, nil
}

// stop ends the broker (SIGTERM to its process group, SIGKILL after 30 s)
// and waits for it.
func (k *kafkaBroker) stop() error {
	syscall.Kill(-k.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-k.done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return nil // killed by our signal
		}
		return err
	case <-time.After(30 * time.Second):
		syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
		<-k.done
		return errors.New("kafka did not stop within 30 s; killed")
	}
}

// kafkaLoad runs KafkaLoad.java (bench/peers/java) with args and returns
// its result fields.
func kafkaLoad(ctx context.Context, env *peersEnv, args ...string) (map[string]string, error) {
	cp := filepath.Join(env.peers, "classes", "kafka") + ":" + filepath.Join(env.peers, "kafka", "lib", "*")
	out, err := measure.Command(ctx, "", nil, env.java, append([]string{"-Xmx1g", "-cp", cp, "KafkaLoad"}, args...)...)
	if err != nil {
		return nil, err
	}
	if args[0] == "create" {
		return nil, nil
	}
	return measure.Fields(out, "result")
}
