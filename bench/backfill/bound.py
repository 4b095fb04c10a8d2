"""What a general-purpose compressor at its strongest makes of a lake's rows.

Usage: python3 bench/backfill/bound.py <lake>/<topic> [day|week|month]

Reads every data file of a topic's lake (names starting with "." or "_"
are not data), groups the rows by the period of their file's directory
(dt=YYYY-MM-DD or month=YYYY-MM; "day", the default, is a file of a
daily lake) and compresses each group with xz at preset 9e, the way a
columnar file would hold it: column after column, integers and
timestamps as 8-byte deltas from the row before, doubles as 8 bytes,
strings one per line, nulls as a sentinel. No footer, no page header and
no type information is counted, and xz sees the whole group at once
(every column's context), so the figure is a floor the Parquet files are
measured against, not a file format.

Prints the groups, the rows, the lake's bytes per row and xz's bytes per
row, whole groups and column by column.
"""
import array
import collections
import datetime
import glob
import lzma
import os
import re
import sys

import pyarrow as pa
import pyarrow.parquet as pq

topic = sys.argv[1]
by = sys.argv[2] if len(sys.argv) > 2 else "day"
if by not in ("day", "week", "month"):
    sys.exit(f"bound.py: grouping {by!r}: want day, week or month")


def period(path):
    m = re.search(r"dt=(\d{4})-(\d{2})-(\d{2})", path)
    if m:
        d = datetime.date(*map(int, m.groups()))
    else:
        m = re.search(r"month=(\d{4})-(\d{2})", path)
        if not m:
            sys.exit(f"bound.py: {path}: no dt= or month= directory")
        if by != "month":
            sys.exit(f"bound.py: {path}: a monthly lake groups by month only")
        d = datetime.date(int(m.group(1)), int(m.group(2)), 1)
    if by == "week":
        return d.isocalendar()[:2]
    if by == "month":
        return (d.year, d.month)
    return d


def column_bytes(c):
    if pa.types.is_string(c.type) or pa.types.is_binary(c.type):
        return "\n".join("" if v is None else v for v in c.to_pylist()).encode()
    if pa.types.is_boolean(c.type):
        return bytes(1 if v else 0 for v in c.to_pylist())
    if pa.types.is_floating(c.type):
        return array.array("d", [-999999.0 if v is None else v for v in c.to_pylist()]).tobytes()
    if pa.types.is_timestamp(c.type):
        c = c.cast(pa.int64())
    v = [-999999 if x is None else x for x in c.to_pylist()]
    return array.array("q", [v[0]] + [v[i] - v[i - 1] for i in range(1, len(v))] if v else []).tobytes()


def xz(b):
    return len(lzma.compress(b, preset=9 | lzma.PRESET_EXTREME))


files = [f for f in glob.glob(topic + "/**/*.parquet", recursive=True)
         if not any(p.startswith((".", "_")) for p in os.path.relpath(f, topic).split(os.sep))]
groups = collections.defaultdict(list)
for f in files:
    groups[period(f)].append(f)
rows = size = whole = 0
per_column = collections.Counter()
for key in sorted(groups):
    table = pa.concat_tables(pq.read_table(f) for f in sorted(groups[key]))
    rows += table.num_rows
    size += sum(os.path.getsize(f) for f in groups[key])
    cols = []
    for name in table.column_names:
        b = column_bytes(table.column(name).combine_chunks())
        per_column[name] += xz(b)
        cols.append(b)
    whole += xz(b"".join(cols))
rows = max(rows, 1)
print(f"{len(groups)} groups by {by}, {len(files)} files, {rows} rows: the lake {size / rows:.2f} B/row; "
      f"xz -9e a group column after column {whole / rows:.2f} B/row, each column on its own {sum(per_column.values()) / rows:.2f}")
for name, n in per_column.most_common():
    print(f"  {name:<16} {n / rows:6.2f}")
