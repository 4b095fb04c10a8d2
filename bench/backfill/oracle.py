"""The backfill benchmark's independent answers, computed by DuckDB from the generated input.

    python3 oracle.py views INPUT.ndjson          expected rows of every view of flights.yaml, as JSON
    python3 oracle.py lake INPUT.ndjson LAKE_GLOB  what the lake holds against the input, as JSON

Each view is written here again in SQL, by hand, from its definition in flights.yaml: nothing is
shared with Lambdaflow's code. As Lambdaflow documents, a sum over no values is 0 (not NULL). Windows are tumbling and aligned to the Unix epoch, so a window's
start is the event time in microseconds rounded down to a multiple of its size. For quantile
aggregates the sorted values of the group are given, so that the caller can allow the sketch's
documented error (1% relative, at a rank within one of q·(n−1)).
"""
import json
import sys

import duckdb

HOUR = 3600 * 1000000
DAY = 24 * HOUR

# name: (window size in µs, group-by column, where, [(aggregate name, SQL, kind)])
# kind: exact (integers and sums of integer-valued doubles), avg, distinct (sketch, ≤ 2%), sorted (quantile)
VIEWS = {
    "flights_by_carrier_day": (DAY, "carrier", "true", [
        ("flights", "count(*)", "exact"), ("avg_dep_delay", "avg(dep_delay)", "avg"),
        ("distance", "coalesce(sum(distance), 0)", "exact"), ("max_arr_delay", "max(arr_delay)", "exact")]),
    "departures_by_origin_hour": (HOUR, "origin", "true", [
        ("flights", "count(*)", "exact"), ("avg_dep_delay", "avg(dep_delay)", "avg"),
        ("min_dep_delay", "min(dep_delay)", "exact")]),
    "delay_quantiles_by_carrier_day": (DAY, "carrier", "true", [
        ("flights", "count(*)", "exact"),
        ("p50_arr_delay", "list_sort(list(arr_delay) FILTER (WHERE arr_delay IS NOT NULL))", "sorted:0.5"),
        ("p95_arr_delay", "list_sort(list(arr_delay) FILTER (WHERE arr_delay IS NOT NULL))", "sorted:0.95")]),
    "routes_by_origin_day": (DAY, "origin", "true", [
        ("flights", "count(*)", "exact"), ("destinations", "count(DISTINCT dest)", "distinct")]),
    "cancellations_by_carrier_day": (DAY, "carrier", "cancelled", [("cancelled", "count(*)", "exact")]),
    "aircraft_by_carrier_week": (7 * DAY, "carrier", "true", [
        ("flights", "count(*)", "exact"), ("aircraft", "count(DISTINCT tailnum)", "distinct"),
        ("air_time", "coalesce(sum(air_time), 0)", "exact")]),
    "late_arrivals_by_dest_day": (DAY, "dest", "arr_delay > 15", [
        ("late", "count(*)", "exact"), ("avg_arr_delay", "avg(arr_delay)", "avg"),
        ("max_arr_delay", "max(arr_delay)", "exact")]),
}

COLUMNS = ("{'id': 'VARCHAR', 'sched_dep': 'VARCHAR', 'carrier': 'VARCHAR', 'flight': 'INTEGER', 'tailnum': 'VARCHAR', "
           "'origin': 'VARCHAR', 'dest': 'VARCHAR', 'distance': 'BIGINT', 'hour': 'INTEGER', 'minute': 'INTEGER', "
           "'sched_arr_time': 'INTEGER', 'dep_time': 'INTEGER', 'dep_delay': 'DOUBLE', 'arr_time': 'INTEGER', "
           "'arr_delay': 'DOUBLE', 'air_time': 'DOUBLE', 'cancelled': 'BOOLEAN'}")


def load(con, path):
    con.execute(f"CREATE TABLE input AS SELECT *, epoch_us(CAST(replace(sched_dep, 'Z', '') AS TIMESTAMP)) AS t "
                f"FROM read_json('{path}', format='newline_delimited', columns={COLUMNS})")


def views(path):
    con = duckdb.connect()
    load(con, path)
    out = {}
    for name, (size, group, where, aggs) in VIEWS.items():
        sel = ", ".join(sql for _, sql, _ in aggs)
        rows = con.execute(f"SELECT t // {size} * {size} AS start, {group}, {sel} FROM input WHERE {where} "
                           f"GROUP BY ALL ORDER BY 1, 2").fetchall()
        out[name] = {"size": size, "group": group, "kinds": {a: k for a, _, k in aggs},
                     "rows": [{"start": r[0], "group": r[1], "aggs": {a: v for (a, _, _), v in zip(aggs, r[2:])}} for r in rows]}
    print(json.dumps(out))


def lake(path, glob):
    con = duckdb.connect()
    load(con, path)
    con.execute(f"CREATE TABLE lake AS SELECT * FROM read_parquet('{glob}', union_by_name=true)")
    fields = ["carrier", "flight", "tailnum", "origin", "dest", "distance", "hour", "minute", "sched_arr_time",
              "dep_time", "dep_delay", "arr_time", "arr_delay", "air_time", "cancelled"]
    differ = " OR ".join(f"i.{f} IS DISTINCT FROM l.{f}" for f in fields) + " OR i.t IS DISTINCT FROM epoch_us(l.sched_dep)"
    rows, ids = con.execute("SELECT count(*), count(DISTINCT _id) FROM lake").fetchone()
    missing = con.execute("SELECT count(*) FROM input i ANTI JOIN lake l ON i.id = l._id").fetchone()[0]
    extra = con.execute("SELECT count(*) FROM lake l ANTI JOIN input i ON i.id = l._id").fetchone()[0]
    changed = con.execute(f"SELECT count(*) FROM input i JOIN lake l ON i.id = l._id WHERE {differ}").fetchone()[0]
    want = con.execute("SELECT count(*) FROM input").fetchone()[0]
    print(json.dumps({"input": want, "rows": rows, "distinct_ids": ids, "missing": missing, "extra": extra, "changed": changed}))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "views":
        views(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "lake":
        lake(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
