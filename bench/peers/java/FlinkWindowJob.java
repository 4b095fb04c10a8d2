// The window job of speed.BenchmarkWindowJob on Apache Flink, for bench/peers.
//
//   java -cp 'classes:flink/lib/*' FlinkWindowJob EVENTS KEYS WARMUP_EVENTS
//
// A local environment (MiniCluster) with parallelism 1, the heap state backend and object reuse; a
// bounded generator source makes the same events as the Go benchmark (same formulas), event time with
// monotonous-timestamp watermarks, keyBy(key), tumbling 1-minute event-time windows, count/sum/max by
// an incremental AggregateFunction. A warm-up job of WARMUP_EVENTS runs first in the same JVM. Printed:
//   result events=N cpu_s=… wall_s=… windows=… count=… sum=… max=…
// where cpu_s is the process's CPU time (all threads: tasks, GC, JIT) from the first event generated
// to the end of the input at the sink, and the checksum fields match the Go benchmark's.
import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;

public class FlinkWindowJob {
    static final long EPOCH_MS = 1_767_225_600_000L; // 2026-01-01T00:00:00Z, as in the Go benchmark

    // Filled by the operators, read after execute(): parallelism 1, one JVM.
    static volatile long startCpu, endCpu;
    static final AtomicLong windows = new AtomicLong(), count = new AtomicLong(), sum = new AtomicLong(), max = new AtomicLong();

    static long cpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
    }

    // (event time ms, key, value)
    static DataGeneratorSource<Tuple3<Long, String, Long>> source(long events, int keys) {
        String[] names = new String[keys];
        for (int k = 0; k < keys; k++) names[k] = "key-" + k;
        return new DataGeneratorSource<>(i -> {
            if (i == 0) startCpu = cpuNanos();
            return Tuple3.of(EPOCH_MS + i / 10, names[(int) (i * 2654435761L % keys)], i * 7919 % 10007);
        }, events, RateLimiterStrategy.noOp(), Types.TUPLE(Types.LONG, Types.STRING, Types.LONG));
    }

    // Accumulator: {count, sum, max}.
    static final class CountSumMax implements AggregateFunction<Tuple3<Long, String, Long>, long[], long[]> {
        public long[] createAccumulator() { return new long[] {0, 0, Long.MIN_VALUE}; }
        public long[] add(Tuple3<Long, String, Long> e, long[] a) {
            a[0]++;
            a[1] += e.f2;
            a[2] = Math.max(a[2], e.f2);
            return a;
        }
        public long[] getResult(long[] a) { return a; }
        public long[] merge(long[] a, long[] b) { return new long[] {a[0] + b[0], a[1] + b[1], Math.max(a[2], b[2])}; }
    }

    static final class Emit extends ProcessWindowFunction<long[], Long, String, TimeWindow> {
        public void process(String key, Context ctx, Iterable<long[]> in, Collector<Long> out) {
            long[] a = in.iterator().next();
            windows.incrementAndGet();
            count.addAndGet(a[0]);
            sum.addAndGet(a[1]);
            max.addAndGet(a[2]);
            out.collect(ctx.window().getStart());
        }
    }

    // Discards rows and notes the CPU time when the input ends.
    static final class EndSink implements Sink<Long> {
        public SinkWriter<Long> createWriter(WriterInitContext ctx) {
            return new SinkWriter<Long>() {
                public void write(Long v, Context c) {}
                public void flush(boolean endOfInput) { if (endOfInput) endCpu = cpuNanos(); }
                public void close() {}
            };
        }
    }

    static void run(long events, int keys) throws Exception {
        windows.set(0); count.set(0); sum.set(0); max.set(0);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(1, new Configuration());
        env.getConfig().enableObjectReuse();
        env.fromSource(source(events, keys),
                        WatermarkStrategy.<Tuple3<Long, String, Long>>forMonotonousTimestamps().withTimestampAssigner((e, ts) -> e.f0),
                        "events")
                .keyBy(e -> e.f1, Types.STRING)
                .window(TumblingEventTimeWindows.of(Duration.ofMinutes(1)))
                .aggregate(new CountSumMax(), new Emit(), PrimitiveArrayTypeInfo.LONG_PRIMITIVE_ARRAY_TYPE_INFO, PrimitiveArrayTypeInfo.LONG_PRIMITIVE_ARRAY_TYPE_INFO, Types.LONG)
                .sinkTo(new EndSink());
        env.execute("window-job");
    }

    public static void main(String[] args) throws Exception {
        long events = Long.parseLong(args[0]);
        int keys = Integer.parseInt(args[1]);
        long warmup = Long.parseLong(args[2]);
        if (warmup > 0) run(warmup, keys);
        long wall0 = System.nanoTime();
        run(events, keys);
        double wall = (System.nanoTime() - wall0) / 1e9;
        System.out.printf("result events=%d cpu_s=%.3f wall_s=%.3f windows=%d count=%d sum=%d max=%d%n",
                events, (endCpu - startCpu) / 1e9, wall, windows.get(), count.get(), sum.get(), max.get());
    }
}
