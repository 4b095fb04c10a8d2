package batch

import (
	kzstd "github.com/klauspost/compress/zstd"
	"math"
	"math/bits"

	"github.com/parquet-go/parquet-go/encoding/bytestreamsplit"
	pqdelta "github.com/parquet-go/parquet-go/encoding/delta"
	"github.com/parquet-go/parquet-go/encoding/plain"
	"github.com/parquet-go/parquet-go/encoding/rle"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// dictPageOverhead is what a dictionary adds besides its values and
// indices: the dictionary page's header and the indices' bit width.
const dictPageOverhead = 12

// encodingTrial chooses a numeric column's encoding in a file of
// smallFileRows to bestFileRows rows by encoding its values both ways and
// compressing them: which is smaller after zstd is hard to estimate from
// counts (a column of a few hundred distance values compresses better as
// a dictionary, 1.4 against 1.7 B/row in the backfill's daily files, though
// the estimate favours delta packing). It compresses at zstd's fastest
// level, with an encoder of its own (the file is written at the best one:
// the order of the two sizes is what counts; on the backfill's daily files
// the fastest level picks as well as the default one, at a fraction of the
// CPU). It is reused from file to file.
type encodingTrial struct {
	zstd  *kzstd.Encoder // made when first needed
	index map[uint64]int32
	i32   []int32
	i64   []int64
	f64   []float64
	idx   []int32
	// distinct are a column's distinct values, in dictionary order.
	distinct []uint64
	enc      []byte
	alt      []byte // the aligned delta packing
	out      []byte
	tried    int // columns tried (tests)
}

// size is the compressed size of an encoded page body: zstd's, or the raw
// frame's when that is smaller (lakeCodec keeps the smaller).
func (tr *encodingTrial) size(b []byte) int64 {
	if tr.zstd == nil {
		// Literals entropy coded even where no match is found, as the
		// file's levels do: at this level the library would leave such
		// blocks (bit-packed dictionary indices) uncompressed and the
		// trial would weigh dictionaries at their raw size.
		tr.zstd = newZstdEncoder(kzstd.SpeedFastest, kzstd.WithAllLitEntropyCompression(true))
	}
	tr.out = tr.zstd.EncodeAll(b, tr.out[:0])
	return int64(min(len(tr.out), rawFrameLen(len(b))))
}

// deltaSize is the compressed size of a page of delta-packed values as
// deltaPacking writes it: the smaller of its two packings. It keeps
// aligned's buffer for reuse.
func (tr *encodingTrial) deltaSize(tight, aligned []byte) int64 {
	tr.alt = aligned
	if len(aligned) == len(tight) {
		return tr.size(tight)
	}
	return min(tr.size(tight), tr.size(aligned))
}

// dictionaryPays reports whether the values (a column's, nulls left out,
// as bits: integers as themselves, doubles by math.Float64bits) take fewer
// bytes dictionary-encoded than in their type's own encoding.
func (tr *encodingTrial) dictionaryPays(typ event.FieldType, vals []uint64) bool {
	t := tr.sizes(typ, vals)
	return dictPageOverhead+t.indices+t.values < t.own
}

// dictionaryPaysFor is dictionaryPays for a column of values non-null
// values and distinct distinct ones, of which sample are the first: the
// sample's sizes scaled to the column (the indices by its rows and the
// wider index of the whole dictionary, the dictionary's values by its
// distinct values). A sample from the start of a file holds a larger
// share of distinct values than the file, so this errs against the
// dictionary.
func (tr *encodingTrial) dictionaryPaysFor(typ event.FieldType, sample []uint64, values, distinct int64) bool {
	t := tr.sizes(typ, sample)
	rows := float64(values) / float64(len(sample))
	wide := float64(max(1, bits.Len64(uint64(distinct-1)))) / float64(max(1, bits.Len(uint(t.distinct-1))))
	dict := float64(dictPageOverhead) + float64(t.indices)*rows*wide + float64(t.values)*float64(distinct)/float64(t.distinct)
	return dict < float64(t.own)*rows
}

// deltaBytesPays reports whether the strings of sample take at least 5 %
// fewer bytes compressed as DELTA_BYTE_ARRAY (each value without the
// prefix it shares with the one before it) than PLAIN; the margin keeps
// PLAIN, which every reader decodes fastest, where the two are close.
func (tr *encodingTrial) deltaBytesPays(sample *stringSample) bool {
	if sample.len() < 2 {
		return false
	}
	var p plain.Encoding
	var d pqdelta.ByteArrayEncoding
	var err error
	if tr.enc, err = p.EncodeByteArray(tr.enc[:0], sample.bytes, sample.ends); err != nil {
		return false
	}
	whole := tr.size(tr.enc)
	if tr.enc, err = d.EncodeByteArray(tr.enc[:0], sample.bytes, sample.ends); err != nil {
		return false
	}
	return 20*tr.size(tr.enc) < 19*whole
}

// trialSizes are the compressed sizes of a column's values both ways.
type trialSizes struct {
	indices, values int64 // dictionary-encoded: the indices, the dictionary's values
	own             int64 // in the type's own encoding
	distinct        int
}

// sizes encodes vals (as dictionaryPays takes them) both ways and
// compresses each.
func (tr *encodingTrial) sizes(typ event.FieldType, vals []uint64) trialSizes {
	tr.tried++
	if tr.index == nil {
		tr.index = map[uint64]int32{}
	}
	clear(tr.index)
	tr.idx = tr.idx[:0]
	tr.i32, tr.i64, tr.f64 = tr.i32[:0], tr.i64[:0], tr.f64[:0]
	// The dictionary's values in the order the writer seeds them
	// (lake_dict_seed.go), and each row's index.
	tr.distinct = sortedDistinct(tr.distinct, typ, vals)
	distinct := tr.distinct
	for k, v := range distinct {
		tr.index[v] = int32(k)
	}
	for _, v := range vals {
		tr.idx = append(tr.idx, tr.index[v])
	}
	width := max(1, bits.Len(uint(len(distinct)-1)))
	enc := rle.Encoding{BitWidth: width}
	var err error
	if tr.enc, err = enc.EncodeInt32(tr.enc[:0], tr.idx); err != nil {
		// Only a width over 32 fails: never a dictionary.
		return trialSizes{indices: math.MaxInt32, own: 0, distinct: len(distinct)}
	}
	t := trialSizes{indices: tr.size(tr.enc), distinct: len(distinct)}
	var own, values []byte
	var p plain.Encoding
	switch typ {
	case event.TypeInt:
		for _, v := range vals {
			tr.i32 = append(tr.i32, int32(v))
		}
		own = appendDeltaPacked(tr.enc[:0], tr.i32, false)
		ownSize := tr.deltaSize(own, appendDeltaPacked(tr.alt[:0], tr.i32, true))
		tr.i32 = tr.i32[:0]
		for _, v := range distinct {
			tr.i32 = append(tr.i32, int32(v))
		}
		values, _ = p.EncodeInt32(own[:0], tr.i32)
		tr.enc = values
		t.values, t.own = tr.size(values), ownSize
		return t
	case event.TypeDouble:
		for _, v := range vals {
			tr.f64 = append(tr.f64, math.Float64frombits(v))
		}
		var s bytestreamsplit.Encoding
		own, _ = s.EncodeDouble(tr.enc[:0], tr.f64)
		ownSize := tr.size(own)
		tr.f64 = tr.f64[:0]
		for _, v := range distinct {
			tr.f64 = append(tr.f64, math.Float64frombits(v))
		}
		values, _ = p.EncodeDouble(own[:0], tr.f64)
		tr.enc = values
		t.values, t.own = tr.size(values), ownSize
		return t
	}
	for _, v := range vals {
		tr.i64 = append(tr.i64, int64(v))
	}
	own = appendDeltaPacked(tr.enc[:0], tr.i64, false)
	ownSize := tr.deltaSize(own, appendDeltaPacked(tr.alt[:0], tr.i64, true))
	tr.i64 = tr.i64[:0]
	for _, v := range distinct {
		tr.i64 = append(tr.i64, int64(v))
	}
	values, _ = p.EncodeInt64(own[:0], tr.i64)
	tr.enc = values
	t.values, t.own = tr.size(values), ownSize
	return t
}
