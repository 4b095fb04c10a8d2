"""What zstd at its strongest level makes of a lake's own pages.

Usage: python3 bench/backfill/pages.py <lake>/<topic> [level]

Reads every data file of a topic's lake (names starting with "." or "_"
are not data), walks each column chunk's pages, decompresses each page
and compresses it again with the reference zstd library (pyarrow's) at
the level given (default 19, zstd's strongest without --ultra; 22 is its
maximum), a frame a page as the lake stores them. Where bound.py asks
what any format could make of the rows, this asks what is left to the
compressor alone: the same pages, the same encodings, a stronger coder.

Prints, column by column and in total, the bytes per row of the pages as
stored and as recompressed (page headers, footers and the magic bytes are
left out of both).
"""
import collections
import glob
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

topic = sys.argv[1]
level = int(sys.argv[2]) if len(sys.argv) > 2 else 19


class Thrift:
    """The Thrift compact protocol, as much of it as page headers use."""

    def __init__(self, b, pos):
        self.b, self.pos = b, pos

    def byte(self):
        v = self.b[self.pos]
        self.pos += 1
        return v

    def varint(self):
        shift = v = 0
        while True:
            c = self.byte()
            v |= (c & 0x7F) << shift
            if c < 0x80:
                return v
            shift += 7

    def zigzag(self):
        v = self.varint()
        return (v >> 1) ^ -(v & 1)

    def value(self, typ):
        if typ in (1, 2):  # a bool field: its value is its type
            return typ == 1
        if typ == 3:
            return self.byte()
        if typ in (4, 5, 6):
            return self.zigzag()
        if typ == 7:
            self.pos += 8
            return None
        if typ == 8:
            n = self.varint()
            self.pos += n
            return self.b[self.pos - n:self.pos]
        if typ in (9, 10):
            h = self.byte()
            n, et = h >> 4, h & 0x0F
            if n == 15:
                n = self.varint()
            # Bools in a list are a byte each: 1 is true (writers differ on false).
            return [self.byte() == 1 if et in (1, 2) else self.value(et) for _ in range(n)]
        if typ == 11:
            n = self.varint()
            if n:
                kv = self.byte()
                for _ in range(n):
                    self.value(kv >> 4)
                    self.value(kv & 0x0F)
            return None
        if typ == 12:
            return self.struct()
        raise ValueError(f"thrift type {typ} at byte {self.pos}")

    def struct(self):
        out, last = {}, 0
        while True:
            h = self.byte()
            if h == 0:
                return out
            delta, typ = h >> 4, h & 0x0F
            fid = last + delta if delta else self.zigzag()
            out[fid] = self.value(typ)
            last = fid


files = [f for f in glob.glob(topic + "/**/*.parquet", recursive=True)
         if not any(p.startswith((".", "_")) for p in os.path.relpath(f, topic).split(os.sep))]
codec = pa.Codec("zstd", compression_level=level)
stored, again = collections.Counter(), collections.Counter()
rows = 0
for f in sorted(files):
    md = pq.ParquetFile(f).metadata
    rows += md.num_rows
    data = open(f, "rb").read()
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        for c in range(rg.num_columns):
            cc = rg.column(c)
            if cc.compression != "ZSTD":
                sys.exit(f"pages.py: {f}: column {cc.path_in_schema} is {cc.compression}, not ZSTD")
            start = cc.data_page_offset
            if cc.has_dictionary_page and 0 < cc.dictionary_page_offset < start:
                start = cc.dictionary_page_offset
            end = start + cc.total_compressed_size
            pos = start
            while pos < end:
                r = Thrift(data, pos)
                h = r.struct()
                body = data[r.pos:r.pos + h[3]]
                pos = r.pos + h[3]
                if h[1] == 1:  # an INDEX_PAGE: not data
                    continue
                levels, packed, size = b"", body, h[2]
                v2 = h.get(8)
                if v2 is not None:
                    n = v2.get(5, 0) + v2.get(6, 0)
                    levels, packed, size = body[:n], body[n:], h[2] - n
                    if not v2.get(7, True):  # is_compressed = false
                        stored[cc.path_in_schema] += len(body)
                        again[cc.path_in_schema] += len(body)
                        continue
                raw = codec.decompress(packed, decompressed_size=size, asbytes=True)
                z = codec.compress(raw, asbytes=True)
                stored[cc.path_in_schema] += len(body)
                again[cc.path_in_schema] += len(levels) + len(z)

print(f"{len(files)} files, {rows} rows; pages as stored and at zstd level {level}, B/row")
for col, n in stored.most_common():
    print(f"  {col:<22} {n / rows:6.3f} {again[col] / rows:6.3f}")
print(f"  {'all pages':<22} {sum(stored.values()) / rows:6.3f} {sum(again.values()) / rows:6.3f}")
