"""DuckDB's side of the batch and lake pairs of bench/peers.

    python3 duckdb_batch.py query GLOB      the views of batch.BenchmarkRecompute as DuckDB GROUP BYs
    python3 duckdb_batch.py copy GLOB OUT   the same rows rewritten by DuckDB as zstd Parquet

query runs each view with 1 thread (CPU time of the process, all threads) and with 2 threads (wall
clock), each once to warm up and once measured, over the Parquet files the Go benchmark wrote, and
prints one line:
    result rows=N lean_t1_cpu=ROWS_PER_CPU_S lean_t2_wall=ROWS_PER_S … design_…
The window is a 1-minute tumbling window over ts, written with time_bucket (DuckDB's windowing
function) and, as a second figure, as integer arithmetic on epoch microseconds (DuckDB's fastest).
copy prints: result rows=N ours_b_per_row=… duckdb_b_per_row=…
"""
import glob
import os
import sys
import time

import duckdb

BUCKETS = {
    "": "time_bucket(INTERVAL 1 MINUTE, ts)",
    "_epoch": "epoch_us(ts) // 60000000",
}

# The views of batch/recompute_bench_test.go.
VIEWS = {
    "lean": "SELECT region, {w} AS w, count(*) AS events, sum(bytes) AS bytes, max(cpu) AS max_cpu "
            "FROM read_parquet('{g}') GROUP BY ALL",
    "design": "SELECT region, {w} AS w, count(*) AS events, avg(cpu) AS avg_cpu, max(cpu) AS max_cpu, "
              "sum(bytes) AS bytes, approx_count_distinct(host) AS hosts, approx_quantile(cpu, 0.95) AS p95_cpu "
              "FROM read_parquet('{g}') WHERE cpu >= 0 GROUP BY ALL",
}


def timed(con, sql):
    """Runs sql into a temporary table (so every aggregate is computed and kept) and returns the
    process CPU seconds and wall seconds it took."""
    c0, w0 = time.process_time(), time.perf_counter()
    con.execute("CREATE OR REPLACE TEMP TABLE r AS " + sql)
    return time.process_time() - c0, time.perf_counter() - w0


def query(g):
    con = duckdb.connect()
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{g}')").fetchone()[0]
    out = {"rows": rows}
    for threads in (1, 2):
        con.execute(f"SET threads={threads}")
        for view, sql in VIEWS.items():
            for suffix, w in BUCKETS.items():
                if threads == 2 and suffix:
                    continue
                q = sql.format(w=w, g=g)
                timed(con, q)  # warm-up: file cache, allocator
                cpu, wall = timed(con, q)
                n = con.execute("SELECT sum(events) FROM r").fetchone()[0]
                if n != rows:
                    sys.exit(f"{view}: {n} events counted, want {rows}")
                if threads == 1:
                    out[f"{view}{suffix}_t1_cpu"] = round(rows / cpu)
                else:
                    out[f"{view}{suffix}_t2_wall"] = round(rows / wall)
    print("result " + " ".join(f"{k}={v}" for k, v in out.items()))


def copy(g, dst):
    con = duckdb.connect()
    con.execute("SET threads=1")  # one output file, rows in the lake's order
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{g}')").fetchone()[0]
    con.execute(f"COPY (SELECT * FROM read_parquet('{g}')) TO '{dst}' (FORMAT parquet, COMPRESSION zstd)")
    ours = sum(os.path.getsize(f) for f in glob.glob(g, recursive=True))
    print(f"result rows={rows} ours_b_per_row={ours / rows:.3f} duckdb_b_per_row={os.path.getsize(dst) / rows:.3f}")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "query":
        query(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "copy":
        copy(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
