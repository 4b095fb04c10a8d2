"""What DuckDB makes of a lake's rows: the reference for the lake's bytes per row.

Usage: python3 bench/backfill/duckdb_reference.py <lake>/<topic> [<out dir> [day|week|month|year]]

Reads every data file of a daily topic's lake (Hive-style dt= directories),
then writes the same rows with DuckDB's COPY, one file per day (PARTITION_BY
dt, as the lake has them; or one per ISO week, month or year, as the last
argument says: what larger partitions would weigh), in event-time order (ties by partition, then
offset, as the lake writer sorts them), with zstd at the default level and
at level 22, each with Parquet format version 1 (DuckDB's default) and 2
(delta encodings, byte stream split), and prints the bytes per row of each.
Compare with bench/backfill/columns.py on the lake itself.
"""
import glob
import os
import shutil
import sys
import tempfile

import duckdb

src = sys.argv[1]
out_dir = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="duckdb-reference-")
os.makedirs(out_dir, exist_ok=True)
by = sys.argv[3] if len(sys.argv) > 3 else "day"
formats = {"day": "%Y-%m-%d", "week": "%G-W%V", "month": "%Y-%m", "year": "%Y"}
if by not in formats:
    sys.exit(f"duckdb_reference: group {by!r}: want one of {', '.join(formats)}")
con = duckdb.connect()
con.execute(f"create table t as select * exclude (dt) from read_parquet('{src}/dt=*/*.parquet', hive_partitioning=true)")
con.execute("alter table t add column dt varchar")
con.execute(f"update t set dt = strftime(_event_time AT TIME ZONE 'UTC', '{formats[by]}')")
rows = con.execute("select count(*) from t").fetchone()[0]
for name, opts in [
    ("zstd", "COMPRESSION zstd"),
    ("zstd, PARQUET_VERSION v2", "COMPRESSION zstd, PARQUET_VERSION v2"),
    ("zstd level 22", "COMPRESSION zstd, COMPRESSION_LEVEL 22"),
    ("zstd level 22, PARQUET_VERSION v2", "COMPRESSION zstd, COMPRESSION_LEVEL 22, PARQUET_VERSION v2"),
]:
    out = os.path.join(out_dir, name.replace(" ", "-").replace(",", ""))
    shutil.rmtree(out, ignore_errors=True)
    con.execute(f"COPY (select * from t order by _event_time, _partition, _offset) TO '{out}' "
                f"(FORMAT parquet, {opts}, PARTITION_BY (dt))")
    files = glob.glob(out + "/**/*.parquet", recursive=True)
    size = sum(os.path.getsize(f) for f in files)
    print(f"{name:36s} {len(files)} files, {size / rows:.2f} B/row")
print(f"(files in {out_dir})")
