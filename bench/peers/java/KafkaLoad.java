// A Kafka producer load with the shape of ingest.BenchmarkHTTPIngest, for bench/peers.
//
//   java -cp 'classes:kafka/lib/*' KafkaLoad create BOOTSTRAP TOPIC PARTITIONS [topic-config=value …]
//   java -cp 'classes:kafka/lib/*' KafkaLoad batches BOOTSTRAP TOPIC EVENTS_FILE CLIENTS PER_BATCH SECONDS [producer-prop=value …]
//   java -cp 'classes:kafka/lib/*' KafkaLoad one BOOTSTRAP TOPIC EVENTS_FILE COUNT [producer-prop=value …]
//
// EVENTS_FILE holds one JSON event per line (the bytes Lambdaflow's benchmark posts); each record's
// value is one line and its key the event's "host", as Lambdaflow partitions by it.
//
// batches: CLIENTS threads share one KafkaProducer (acks=all unless overridden); each sends PER_BATCH
// records and waits for all their acknowledgements before sending the next PER_BATCH, like an HTTP
// client posting a PER_BATCH-event body and waiting for its answer. Two seconds of warm-up, then
// SECONDS measured. one: a single thread sends one record and waits for its acknowledgement, COUNT
// times after 200 warm-up sends. Printed:
//   result events=N seconds=S events_per_s=R p50_ms=… p99_ms=…
// with the latencies of a batch's (or a record's) acknowledgement as the client sees it.
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class KafkaLoad {
    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "create" -> create(args[1], args[2], Integer.parseInt(args[3]), Arrays.copyOfRange(args, 4, args.length));
            case "batches" -> batches(args[1], args[2], records(args[3]), Integer.parseInt(args[4]), Integer.parseInt(args[5]),
                    Double.parseDouble(args[6]), Arrays.copyOfRange(args, 7, args.length));
            case "one" -> one(args[1], args[2], records(args[3]), Integer.parseInt(args[4]), Arrays.copyOfRange(args, 5, args.length));
            default -> throw new IllegalArgumentException("unknown command " + args[0]);
        }
    }

    static Map<String, String> pairs(String[] kv) {
        Map<String, String> m = new HashMap<>();
        for (String s : kv) {
            int i = s.indexOf('=');
            if (i < 1) throw new IllegalArgumentException("not key=value: " + s);
            m.put(s.substring(0, i), s.substring(i + 1));
        }
        return m;
    }

    static void create(String bootstrap, String topic, int partitions, String[] configs) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(p)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1).configs(pairs(configs)))).all().get();
        }
        System.out.println("created " + topic);
    }

    // records reads the events file: {key, value} per line.
    static List<byte[][]> records(String file) throws Exception {
        List<byte[][]> out = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of(file), StandardCharsets.UTF_8)) {
            if (line.isEmpty()) continue;
            int i = line.indexOf("\"host\":\"");
            if (i < 0) throw new IllegalArgumentException("no host in " + line);
            int j = line.indexOf('"', i + 8);
            out.add(new byte[][] {line.substring(i + 8, j).getBytes(StandardCharsets.UTF_8), line.getBytes(StandardCharsets.UTF_8)});
        }
        return out;
    }

    static KafkaProducer<byte[], byte[]> producer(String bootstrap, Map<String, String> props) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.putAll(props);
        return new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
    }

    static void batches(String bootstrap, String topic, List<byte[][]> recs, int clients, int perBatch, double seconds, String[] props)
            throws Exception {
        Map<String, String> extra = pairs(props);
        int nprod = Integer.parseInt(extra.getOrDefault("producers", "1"));
        extra.remove("producers");
        List<KafkaProducer<byte[], byte[]>> prods = new ArrayList<>();
        for (int i = 0; i < nprod; i++) prods.add(producer(bootstrap, extra));
        try {
            long start = System.nanoTime(), measureFrom = start + 2_000_000_000L, end = measureFrom + (long) (seconds * 1e9);
            AtomicLong events = new AtomicLong(), lastDone = new AtomicLong(measureFrom);
            List<List<Long>> lats = new ArrayList<>();
            List<Thread> threads = new ArrayList<>();
            AtomicLong failures = new AtomicLong();
            for (int c = 0; c < clients; c++) {
                List<Long> lat = new ArrayList<>();
                lats.add(lat);
                int first = c * perBatch;
                KafkaProducer<byte[], byte[]> prod = prods.get(c % nprod);
                Thread t = new Thread(() -> {
                    List<Future<RecordMetadata>> acks = new ArrayList<>(perBatch);
                    try {
                        for (long t0 = System.nanoTime(); t0 < end; t0 = System.nanoTime()) {
                            acks.clear();
                            for (int i = 0; i < perBatch; i++) {
                                byte[][] r = recs.get((first + i) % recs.size());
                                acks.add(prod.send(new ProducerRecord<>(topic, r[0], r[1])));
                            }
                            for (Future<RecordMetadata> f : acks) f.get();
                            long t1 = System.nanoTime();
                            if (t0 >= measureFrom) {
                                lat.add(t1 - t0);
                                events.addAndGet(perBatch);
                                lastDone.accumulateAndGet(t1, Math::max);
                            }
                        }
                    } catch (Exception e) {
                        failures.incrementAndGet();
                        e.printStackTrace();
                    }
                });
                threads.add(t);
                t.start();
            }
            for (Thread t : threads) t.join();
            if (failures.get() > 0) throw new IllegalStateException(failures.get() + " clients failed");
            List<Long> all = new ArrayList<>();
            lats.forEach(all::addAll);
            report(events.get(), (lastDone.get() - measureFrom) / 1e9, all);
        } finally {
            for (KafkaProducer<byte[], byte[]> p : prods) p.close();
        }
    }

    static void one(String bootstrap, String topic, List<byte[][]> recs, int count, String[] props) throws Exception {
        try (KafkaProducer<byte[], byte[]> prod = producer(bootstrap, pairs(props))) {
            List<Long> lat = new ArrayList<>();
            long measureFrom = 0;
            for (int i = 0; i < count + 200; i++) {
                if (i == 200) measureFrom = System.nanoTime();
                byte[][] r = recs.get(i % recs.size());
                long t0 = System.nanoTime();
                prod.send(new ProducerRecord<>(topic, r[0], r[1])).get();
                if (i >= 200) lat.add(System.nanoTime() - t0);
            }
            report(count, (System.nanoTime() - measureFrom) / 1e9, lat);
        }
    }

    static void report(long events, double seconds, List<Long> lat) {
        long[] l = lat.stream().mapToLong(Long::longValue).sorted().toArray();
        if (l.length == 0) throw new IllegalStateException("nothing measured");
        System.out.printf("result events=%d seconds=%.3f events_per_s=%.0f p50_ms=%.3f p99_ms=%.3f%n", events, seconds,
                events / seconds, l[l.length / 2] / 1e6, l[Math.min(l.length - 1, l.length * 99 / 100)] / 1e6);
    }
}
