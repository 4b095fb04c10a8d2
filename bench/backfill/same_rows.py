"""Whether two lakes of a topic hold the same rows, as DuckDB and pyarrow read them.

Usage: python3 bench/backfill/same_rows.py <lake>/<topic> <other lake>/<topic>

Prints the rows of each that the other lacks (DuckDB, EXCEPT ALL over every
column) and whether pyarrow reads equal tables once both are sorted by
partition and offset; exits 1 when they differ. For comparing a lake with
one rewritten by another writer (batch.TestLakeRewrite): the values must be
the same whatever the files' encodings and row order.
"""
import sys

import duckdb
import pyarrow.dataset as ds

a, b = sys.argv[1], sys.argv[2]
con = duckdb.connect()


def rows(d):
    return f"(select * exclude (dt) from read_parquet('{d}/dt=*/**/*.parquet', hive_partitioning=true))"


only_a = con.execute(f"select count(*) from ({rows(a)} except all {rows(b)})").fetchone()[0]
only_b = con.execute(f"select count(*) from ({rows(b)} except all {rows(a)})").fetchone()[0]
n = con.execute(f"select count(*) from {rows(a)}").fetchone()[0]
order = [("_partition", "ascending"), ("_offset", "ascending")]
ta = ds.dataset(a, format="parquet", partitioning="hive").to_table().sort_by(order)
tb = ds.dataset(b, format="parquet", partitioning="hive").to_table().sort_by(order)
equal = ta.equals(tb)
print(f"DuckDB: {n} rows, {only_a} only in {a}, {only_b} only in {b}; pyarrow: {'equal' if equal else 'different'} tables")
sys.exit(0 if only_a == only_b == 0 and equal else 1)
