// ClientCheck drives the Apache Kafka Java client against a Lambdaflow
// Kafka listener for the kafka package's tests. It is run as a single-file
// program (java -cp "kafka-clients jars/*" ClientCheck.java MODE BOOTSTRAP [ARGS] [key=value...])
// or compiled first, as the tests do
// (key=value arguments are extra client properties, e.g. SASL settings).
//
// Modes, each printing one line per fact the test checks:
//   produce B N PREFIX   N records with header id=PREFIX-i to partition 0, acks=all,
//                        idempotent: "offset <o>" each
//   invalid B            one record the topic schema refuses: "error <ExceptionClass>"
//   consume B GROUP N    reads N records as member of GROUP from the earliest offset,
//                        commits: "record <partition> <offset> <id> <value>" each
//   group B GROUP        two members: "shared" once each owns one partition,
//                        "rebalanced" once the second left and the first owns both
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.*;

public class ClientCheck {
    static final String TOPIC = "metrics";

    public static void main(String[] args) throws Exception {
        String mode = args[0];
        Properties extra = new Properties();
        List<String> pos = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq > 0 && args[i].contains(".")) {
                extra.put(args[i].substring(0, eq), args[i].substring(eq + 1));
            } else {
                pos.add(args[i]);
            }
        }
        String bootstrap = pos.get(0);
        switch (mode) {
            case "produce" -> produce(bootstrap, Integer.parseInt(pos.get(1)), pos.get(2), extra);
            case "invalid" -> invalid(bootstrap, extra);
            case "consume" -> consume(bootstrap, pos.get(1), Integer.parseInt(pos.get(2)), extra);
            case "group" -> group(bootstrap, pos.get(1), extra);
            default -> throw new IllegalArgumentException("unknown mode " + mode);
        }
    }

    static Properties producerProps(String bootstrap, Properties extra) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "20000");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.putAll(extra);
        return p;
    }

    static String value(int i) {
        return String.format("{\"ts\":\"2026-01-02T15:04:%02dZ\",\"host\":\"java\",\"cpu\":%d.5}", i % 60, i);
    }

    static void produce(String bootstrap, int n, String prefix, Properties extra) throws Exception {
        try (KafkaProducer<String, String> prod = new KafkaProducer<>(producerProps(bootstrap, extra))) {
            List<Future<RecordMetadata>> fs = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                ProducerRecord<String, String> r = new ProducerRecord<>(TOPIC, 0, "java", value(i));
                r.headers().add("id", (prefix + "-" + i).getBytes());
                fs.add(prod.send(r));
            }
            for (Future<RecordMetadata> f : fs) {
                System.out.println("offset " + f.get().offset());
            }
        }
    }

    static void invalid(String bootstrap, Properties extra) throws Exception {
        Properties p = producerProps(bootstrap, extra);
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false");
        p.put(ProducerConfig.RETRIES_CONFIG, "0");
        try (KafkaProducer<String, String> prod = new KafkaProducer<>(p)) {
            ProducerRecord<String, String> r = new ProducerRecord<>(TOPIC, 0, "java", "{\"ts\":\"2026-01-02T15:04:05Z\",\"host\":\"java\",\"cpu\":\"high\"}");
            try {
                prod.send(r).get();
                System.out.println("accepted");
            } catch (ExecutionException e) {
                System.out.println("error " + e.getCause().getClass().getSimpleName());
            }
        }
    }

    static Properties consumerProps(String bootstrap, String group, Properties extra) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "6000");
        p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.putAll(extra);
        return p;
    }

    static void consume(String bootstrap, String group, int n, Properties extra) {
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(bootstrap, group, extra))) {
            c.subscribe(List.of(TOPIC));
            int got = 0;
            long deadline = System.currentTimeMillis() + 60_000;
            while (got < n && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    Header id = r.headers().lastHeader("id");
                    System.out.println("record " + r.partition() + " " + r.offset() + " " + (id == null ? "-" : new String(id.value())) + " " + r.value());
                    got++;
                }
            }
            c.commitSync();
        }
    }

    // member polls its consumer on its own thread (a KafkaConsumer belongs to
    // one thread) and publishes the partitions it owns.
    static class Member implements Runnable {
        final KafkaConsumer<String, String> c;
        final AtomicReference<Set<Integer>> owned = new AtomicReference<>(Set.of());
        volatile boolean stop;

        Member(Properties p) { c = new KafkaConsumer<>(p); }

        public void run() {
            c.subscribe(List.of(TOPIC));
            while (!stop) {
                c.poll(Duration.ofMillis(100));
                Set<Integer> s = new TreeSet<>();
                for (TopicPartition tp : c.assignment()) s.add(tp.partition());
                owned.set(s);
            }
            c.close();
        }
    }

    static void await(String what, java.util.function.BooleanSupplier cond) throws InterruptedException {
        long deadline = System.currentTimeMillis() + 60_000;
        while (!cond.getAsBoolean()) {
            if (System.currentTimeMillis() > deadline) throw new IllegalStateException("timed out waiting for " + what);
            Thread.sleep(20);
        }
    }

    static void group(String bootstrap, String group, Properties extra) throws Exception {
        Member a = new Member(consumerProps(bootstrap, group, extra));
        Member b = new Member(consumerProps(bootstrap, group, extra));
        Thread ta = new Thread(a), tb = new Thread(b);
        ta.start();
        await("a to own both partitions", () -> a.owned.get().size() == 2);
        tb.start();
        await("the partitions to be shared", () -> a.owned.get().size() == 1 && b.owned.get().size() == 1);
        System.out.println("shared");
        b.stop = true;
        tb.join();
        await("a to own both partitions again", () -> a.owned.get().size() == 2);
        System.out.println("rebalanced");
        a.stop = true;
        ta.join();
    }
}
