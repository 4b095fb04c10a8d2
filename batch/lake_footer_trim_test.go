package batch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// trimFooterDecoded is what trimFooter does, done the plain way: the
// footer decoded into parquet-go's structures, the fields cleared, encoded
// again. It is the reference the one-pass trim is checked against.
func trimFooterDecoded(file []byte, stats []bool) ([]byte, error) {
	size := int(binary.LittleEndian.Uint32(file[len(file)-8:]))
	var md format.FileMetaData
	proto := &thrift.CompactProtocol{}
	if err := thrift.Unmarshal(proto, file[len(file)-8-size:len(file)-8], &md); err != nil {
		return nil, err
	}
	for i := range md.Schema {
		if e := &md.Schema[i]; !e.Type.Valid || e.Type.V != format.FixedLenByteArray {
			e.TypeLength = thrift.Null[int32]{}
		}
	}
	for i := range md.RowGroups {
		cols := md.RowGroups[i].Columns
		for j := range cols {
			c := &cols[j]
			c.ColumnIndexOffset, c.ColumnIndexLength = 0, 0
			c.OffsetIndexOffset, c.OffsetIndexLength = 0, 0
			c.MetaData.SizeStatistics = format.SizeStatistics{}
			c.MetaData.EncodingStats = nil
			if j < len(stats) && !stats[j] {
				c.MetaData.Statistics = format.Statistics{NullCount: c.MetaData.Statistics.NullCount}
			}
		}
	}
	b, err := thrift.Marshal(proto, &md)
	if err != nil {
		return nil, err
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(b)))
	return append(b, "PAR1"...), nil
}

// trimFiles are parquet-go files with everything trimFooter leaves out:
// page indexes, page encoding counts, size statistics, type lengths, and
// statistics with bounds on every column; a fixed-length byte array keeps
// its type length.
func trimFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files := footerFiles(t)
	type wide struct {
		A  int64    `parquet:"a"`
		U  [16]byte `parquet:"u"`
		S  string   `parquet:"s,dict"`
		O  *int32   `parquet:"o,optional"`
		F  float64  `parquet:"f"`
		TS int64    `parquet:"ts,timestamp(microsecond)"`
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[wide](&buf, parquet.MaxRowsPerRowGroup(25), parquet.PageBufferSize(256),
		parquet.DataPageStatistics(true), parquet.Compression(&parquet.Zstd), parquet.KeyValueMetadata("k", "v"))
	for i := range 80 {
		r := wide{A: int64(i), S: fmt.Sprint("s", i%5), F: float64(i) / 3, TS: int64(i) * 1e6}
		r.U[i%16] = byte(i)
		if i%4 != 0 {
			v := int32(i)
			r.O = &v
		}
		if _, err := w.Write([]wide{r}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files["parquet-go, 4 row groups, many pages, a fixed-length column"] = slices.Clone(buf.Bytes())
	return files
}

// TestTrimFooter: the one-pass trim gives exactly the bytes of the footer
// decoded, trimmed and encoded again, for files of the lake's writer
// (trimmed already: unchanged) and of parquet-go's, with statistics kept
// on every column, on none, on every other one and on the first only.
func TestTrimFooter(t *testing.T) {
	for name, file := range trimFiles(t) {
		pf, err := parquet.OpenFile(bytes.NewReader(file), int64(len(file)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n := len(pf.Metadata().RowGroups[0].Columns)
		alternate := make([]bool, n)
		for i := range alternate {
			alternate[i] = i%2 == 0
		}
		for _, stats := range [][]bool{nil, make([]bool, n), alternate, {true}} {
			want, err := trimFooterDecoded(file, stats)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got, err := trimFooter([]byte("kept"), file, int64(len(file)), stats)
			if err != nil {
				t.Fatalf("%s, stats %v: %v", name, stats, err)
			}
			if !bytes.HasPrefix(got, []byte("kept")) || !bytes.Equal(got[4:], want) {
				t.Fatalf("%s, stats %v: trimmed footer\n%x\nwant\n%x", name, stats, got, want)
			}
		}
		// The trimmed footer makes a file parquet-go reads, without a
		// page index and with a type length on fixed-length columns only.
		foot, err := trimFooter(nil, file, int64(len(file)), nil)
		if err != nil {
			t.Fatal(err)
		}
		size := int(binary.LittleEndian.Uint32(file[len(file)-8:]))
		trimmed := append(slices.Clone(file[:len(file)-8-size]), foot...)
		tf, err := parquet.OpenFile(bytes.NewReader(trimmed), int64(len(trimmed)))
		if err != nil {
			t.Fatalf("%s trimmed: %v", name, err)
		}
		md := tf.Metadata()
		for _, e := range md.Schema {
			if e.TypeLength.Valid != (e.Type.Valid && e.Type.V == format.FixedLenByteArray) {
				t.Errorf("%s: %s type length %+v", name, e.Name, e.TypeLength)
			}
		}
		for _, rg := range md.RowGroups {
			for _, c := range rg.Columns {
				if c.ColumnIndexLength != 0 || c.OffsetIndexLength != 0 || len(c.MetaData.EncodingStats) != 0 {
					t.Errorf("%s: %s keeps a page index or encoding counts", name, c.MetaData.PathInSchema)
				}
			}
		}
		if tf.NumRows() != pf.NumRows() {
			t.Errorf("%s: %d rows trimmed, %d before", name, tf.NumRows(), pf.NumRows())
		}
	}
}

// TestTrimFooterDamaged: a footer damaged anywhere (a byte changed, or cut
// short) gives an error or a well-formed footer (its Thrift read to its
// end), never a panic.
func TestTrimFooterDamaged(t *testing.T) {
	file := trimFiles(t)["parquet-go, 4 row groups, many pages, a fixed-length column"]
	size := int(binary.LittleEndian.Uint32(file[len(file)-8:]))
	start := len(file) - 8 - size
	stats := []bool{true, false}
	damaged := 0
	check := func(what string, b []byte) {
		damaged++
		foot, err := trimFooter(nil, b, int64(len(b)), stats)
		if err != nil {
			return
		}
		n := int(binary.LittleEndian.Uint32(foot[len(foot)-8:]))
		r := thriftReader{b: foot[:n]}
		if err := r.skipStruct(0); err != nil || r.pos != n || n != len(foot)-8 {
			t.Fatalf("%s: the trimmed footer is not well formed (%v, %d of %d bytes)", what, err, r.pos, n)
		}
	}
	for i := start; i < len(file)-8; i++ {
		for _, v := range []byte{0x00, 0xff, file[i] ^ 0x10} {
			b := slices.Clone(file)
			b[i] = v
			check(fmt.Sprintf("byte %d = %#x", i-start, v), b)
		}
		cut := append(slices.Clone(file[:i]), file[len(file)-8:]...)
		binary.LittleEndian.PutUint32(cut[len(cut)-8:], uint32(i-start))
		check(fmt.Sprintf("cut at %d", i-start), cut)
	}
	t.Logf("%d damaged footers", damaged)
	for _, b := range [][]byte{nil, []byte("PAR1"), []byte("xxxxxxxxPAR1"), append(binary.LittleEndian.AppendUint32(nil, 99), "PAR1"...)} {
		if _, err := trimFooter(nil, b, 1, nil); err == nil {
			t.Errorf("%q: no error", b)
		}
	}
}
