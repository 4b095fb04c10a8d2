"""Bytes per row of each column of a topic's lake, from the Parquet footers.

Usage: python3 bench/backfill/columns.py <lake>/<topic>

Prints the files, rows and bytes per row of the data files (names starting
with "." or "_" are not data), what lies outside the column chunks (footers,
page indexes) and each column's compressed bytes per row with its encodings.
"""
import collections
import glob
import os
import sys

import pyarrow.parquet as pq

topic = sys.argv[1]
files = [f for f in glob.glob(topic + "/**/*.parquet", recursive=True)
         if not any(p.startswith((".", "_")) for p in os.path.relpath(f, topic).split(os.sep))]
by, encodings = collections.Counter(), {}
rows = size = outside = footer = 0
for f in files:
    md = pq.ParquetFile(f).metadata
    rows += md.num_rows
    size += os.path.getsize(f)
    footer += md.serialized_size
    chunks = 0
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        for c in range(rg.num_columns):
            # Column chunks name their column by position (not every writer
            # fills path_in_schema).
            name = md.schema.column(c).name
            cc = rg.column(c)
            by[name] += cc.total_compressed_size
            chunks += cc.total_compressed_size
            encodings[name] = "/".join(cc.encodings)
    outside += os.path.getsize(f) - chunks
rows = max(rows, 1)
print(f"{len(files)} files, {rows} rows, {size / rows:.2f} B/row; outside the column chunks {outside / rows:.2f} B/row (footers {footer / rows:.2f})")
for name, n in by.most_common():
    print(f"  {name:20s} {n / rows:6.2f} B/row  {encodings[name]}")
