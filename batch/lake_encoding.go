package batch

import (
	"hash/maphash"
	"math"
	"math/bits"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// encodingChoice is a column's encoding in one file, chosen by the writer
// from the file's rows (encodingSurvey): which encoding is smallest depends
// on the data (how many distinct values a file's rows hold, in what runs),
// not only on the column's type.
type encodingChoice uint8

const (
	// encFixed is the column type's own encoding (columnOf, the metadata
	// columns' in newLakeSchema): what a file gets when its rows were not
	// surveyed.
	encFixed encodingChoice = iota
	// encDict is RLE_DICTIONARY: few distinct values, or values in long runs.
	encDict
	// encPlain is PLAIN: strings whose dictionary would not pay (most
	// values distinct).
	encPlain
	// encDeltaBytes is DELTA_BYTE_ARRAY: strings in a file of bestFileRows
	// rows or more that each share a prefix with the one before them
	// (numbered ids in time order), where leaving the prefix out beats
	// what zstd's default level makes of the repeats.
	encDeltaBytes
)

// encodingPlan holds a file's choice for each column (the topic's fields,
// then the metadata columns); nil is every column's fixed encoding.
type encodingPlan []encodingChoice

// key names the plan (a map key for the writers of each plan).
func (p encodingPlan) key() string {
	b := make([]byte, len(p))
	for i, c := range p {
		b[i] = '0' + byte(c)
	}
	return string(b)
}

// maxTracked bounds the distinct values a survey tracks per column (its
// hash set stays under 256 KiB): past it a column keeps its fixed
// encoding. A dictionary of more values than that seldom pays even in a
// file of a million rows, and busy topics' measurements fit (a CPU share
// to two decimals has 10,001 values).
const maxTracked = 1 << 14

// encodingSurvey gathers, over the rows of one file before it is written,
// what choosing each column's encoding needs: the distinct values (by
// 64-bit hash), their bytes (strings), the runs of equal values, and what
// delta packing would take (integers), and the first values of string
// columns and ids (whether their shared prefixes pay in a large file).
// Columns whose encoding is fixed (_partition: few values; _offset and
// _event_time: delta packing of sorted or near-sorted values) are not
// surveyed. It is reused from file to file; not safe for concurrent use.
type encodingSurvey struct {
	ls    *lakeSchema
	seed  maphash.Seed
	rows  int64
	cols  []columnSurvey // one per topic field, then _ingest_time
	ids   stringSample   // the first ids, for the trial of DELTA_BYTE_ARRAY
	trial encodingTrial
}

// columnSurvey is one column's survey.
type columnSurvey struct {
	seen          hashSet
	over          bool  // more than maxTracked distinct values
	overAt        int64 // the values seen when the distinct ones passed maxTracked
	values        int64 // non-null values
	bytes         int64 // strings: bytes of all values
	distinctBytes int64 // strings: bytes of the distinct values
	// runs of equal values (nulls left out), for the RLE of dictionary
	// indices: runCost is what the runs ended so far take, in bits.
	last    uint64
	run     int64
	runs    int64 // runs of equal values (changes of value, plus one)
	runEnds int64 // runs of 8 or more
	shortN  int64 // values in runs shorter than 8
	// delta packing (integers): blocks of 128 deltas in miniblocks of 32,
	// each packed at the bit width of its largest delta above the block's
	// smallest; deltaBits is what the blocks ended so far take.
	prev      int64
	mini      [4]struct{ lo, hi int64 }
	inBlock   int
	deltaBits int64
	// vals are the values of a numeric column (as bits), up to
	// bestFileRows of them, for the trial of its encodings (encodingTrial):
	// a file of more rows is planned by estimates alone.
	vals []uint64
	// strs are a string column's first values, for the trial of
	// DELTA_BYTE_ARRAY in a file of bestFileRows rows or more.
	strs stringSample
}

// maxSampleBytes bounds the bytes of a stringSample.
const maxSampleBytes = 1 << 20

// stringSample holds the first values of a string column, up to
// bestFileRows of them and maxSampleBytes in all, concatenated, as
// parquet-go's byte array encoders take them.
type stringSample struct {
	bytes []byte
	ends  []uint32 // value i is bytes[ends[i]:ends[i+1]]; ends[0] is 0
}

func (s *stringSample) add(v string) {
	if len(s.ends) == 0 {
		s.ends = append(s.ends, 0)
	}
	if len(s.ends) > bestFileRows || len(s.bytes)+len(v) > maxSampleBytes {
		return
	}
	s.bytes = append(s.bytes, v...)
	s.ends = append(s.ends, uint32(len(s.bytes)))
}

func (s *stringSample) len() int { return max(0, len(s.ends)-1) }

func (s *stringSample) reset() { s.bytes, s.ends = s.bytes[:0], s.ends[:0] }

func newEncodingSurvey(ls *lakeSchema) *encodingSurvey {
	return &encodingSurvey{ls: ls, seed: maphash.MakeSeed(), cols: make([]columnSurvey, len(ls.fields)+1)}
}

// reset empties the survey for the next file.
func (s *encodingSurvey) reset() {
	s.rows = 0
	s.ids.reset()
	for i := range s.cols {
		c := &s.cols[i]
		c.seen.reset()
		c.strs.reset()
		*c = columnSurvey{seen: c.seen, vals: c.vals[:0], strs: c.strs}
	}
}

// observe adds rows to the survey, in the order they will be written.
func (s *encodingSurvey) observe(evs []event.Event) {
	n := len(s.ls.fields)
	for i, f := range s.ls.fields {
		c := &s.cols[i]
		switch f.Type {
		case event.TypeBool:
			// Booleans are bit-packed: nothing to choose.
		case event.TypeDouble:
			for j := range evs {
				if vs := evs[j].Values; i < len(vs) && vs[i].Valid {
					c.add(math.Float64bits(vs[i].F), 0, false)
					c.keep(math.Float64bits(vs[i].F))
				}
			}
		case event.TypeString:
			for j := range evs {
				if vs := evs[j].Values; i < len(vs) && vs[i].Valid {
					c.addString(s.seed, vs[i].S)
					c.strs.add(vs[i].S)
				}
			}
		default:
			for j := range evs {
				if vs := evs[j].Values; i < len(vs) && vs[i].Valid {
					c.add(uint64(vs[i].I), vs[i].I, true)
					c.keep(uint64(vs[i].I))
				}
			}
		}
	}
	c := &s.cols[n]
	for j := range evs {
		c.add(uint64(evs[j].Ingest), evs[j].Ingest, true)
		c.keep(uint64(evs[j].Ingest))
		s.ids.add(evs[j].ID)
	}
	s.rows += int64(len(evs))
}

func (c *columnSurvey) addString(seed maphash.Seed, v string) {
	c.bytes += int64(len(v))
	h := maphash.String(seed, v)
	if c.add(h, 0, false) {
		c.distinctBytes += int64(len(v))
	}
}

// add counts one value (h: its bits or hash; i: the integer, when delta
// packing applies) and reports whether it was new.
func (c *columnSurvey) add(h uint64, i int64, integer bool) bool {
	if c.values > 0 && h == c.last {
		c.run++
	} else {
		c.endRun()
		c.last, c.run = h, 1
		c.runs++
	}
	if integer {
		if c.values > 0 {
			c.addDelta(i - c.prev)
		}
		c.prev = i
	}
	c.values++
	if c.over {
		return false
	}
	added := c.seen.add(h)
	if c.seen.len() > maxTracked {
		c.over, c.overAt = true, c.values
		c.seen.reset()
	}
	return added
}

// keep keeps a numeric value for the trial of encodings, up to
// bestFileRows.
func (c *columnSurvey) keep(v uint64) {
	if len(c.vals) < bestFileRows {
		c.vals = append(c.vals, v)
	}
}

func (c *columnSurvey) endRun() {
	if c.run >= 8 {
		c.runEnds++
	} else {
		c.shortN += c.run
	}
	c.run = 0
}

func (c *columnSurvey) addDelta(d int64) {
	m := &c.mini[c.inBlock/32]
	if c.inBlock%32 == 0 {
		m.lo, m.hi = d, d
	} else {
		m.lo, m.hi = min(m.lo, d), max(m.hi, d)
	}
	c.inBlock++
	if c.inBlock == 128 {
		c.endBlock()
	}
}

// endBlock adds the bits of the delta block so far: its header (the
// smallest delta as a varint, a bit width per miniblock) and its miniblocks.
func (c *columnSurvey) endBlock() {
	if c.inBlock == 0 {
		return
	}
	full := (c.inBlock + 31) / 32
	lo := c.mini[0].lo
	for _, m := range c.mini[1:full] {
		lo = min(lo, m.lo)
	}
	c.deltaBits += 8 * (4 + int64(varintLen(lo)))
	for _, m := range c.mini[:full] {
		c.deltaBits += 32 * int64(bits.Len64(uint64(m.hi-lo)))
	}
	c.inBlock = 0
}

func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63) // zigzag
	return max(1, (bits.Len64(u)+6)/7)
}

// plan chooses each column's encoding for the rows observed. The choice
// compares estimates of the encoded sizes before compression (zstd runs
// over every page either way):
//   - a dictionary costs its distinct values once plus an index per value,
//     bit-packed at the width of the dictionary's size, a run of eight or
//     more equal values taking a couple of bytes whatever its length;
//   - strings without one cost their bytes, of which zstd removes the
//     repeats, at about 3 bytes a repeat, so a dictionary pays when its
//     indices take less than the repeats would;
//   - integers without one are delta packed (the estimate is exact, page
//     boundaries aside); when the values come in runs (a value changes at
//     fewer than three rows in four: clock times in rows sorted by time)
//     most deltas are zero and zstd takes the packed deltas to a quarter
//     or less, so a dictionary must beat a quarter of them; when the
//     values change at almost every row (the ingest times of a few log
//     entries, interleaved by event time) zstd finds little in packed
//     deltas, and a dictionary must beat them whole;
//   - doubles without one are split by byte, which zstd brings to a byte
//     or two per value for measurements (delays, prices), so a dictionary
//     is taken only when it costs less than a byte per value: a handful
//     of distinct values.
//
// A column with more distinct values than maxTracked keeps its encoding,
// but for strings that were nearly all distinct until then: PLAIN.
// In a file of smallFileRows to bestFileRows rows the numeric columns are
// not estimated but tried (encodingTrial): both ways, compressed; in a
// larger file, tried on its first bestFileRows values and scaled.
func (s *encodingSurvey) plan() encodingPlan {
	if s.rows == 0 {
		return nil
	}
	n := len(s.ls.fields)
	p := make(encodingPlan, n+metaColumns)
	for i := range s.cols {
		c := &s.cols[i]
		if typ, col := s.column(i); c.over && typ == event.TypeString && 4*c.overAt <= 5*maxTracked {
			// Past maxTracked distinct strings with four in five of the
			// values so far distinct (ids, URLs): a dictionary would hold
			// nearly every value and add an index to each row (16 random
			// hex digits a value: 11.5 B/row as a dictionary, 8.4 plain).
			p[col] = encPlain
			continue
		}
		if c.over || c.values == 0 {
			continue
		}
		c.endRun()
		c.endBlock()
		d := int64(c.seen.len())
		width := int64(max(1, bits.Len64(uint64(d-1))))
		indexBytes := (c.shortN*width+7)/8 + c.runEnds*(2+width/8)
		typ, col := s.column(i)
		if typ != event.TypeString && s.rows >= smallFileRows && s.rows < bestFileRows && c.values == int64(len(c.vals)) {
			// Few enough rows to try both ways.
			if s.trial.dictionaryPays(typ, c.vals) {
				p[col] = encDict
			}
			continue
		}
		if typ != event.TypeString && s.rows >= bestFileRows && len(c.vals) == bestFileRows {
			// Tried on the first rows, scaled to the file: a busy topic's
			// measurements (a CPU share to two decimals: ~10,000 values,
			// each a double with a full mantissa) are half the bytes as a
			// dictionary, which no count predicts.
			if s.trial.dictionaryPaysFor(typ, c.vals, c.values, d) {
				p[col] = encDict
			}
			continue
		}
		switch typ {
		case event.TypeString:
			if indexBytes < 3*(c.values-d) {
				p[col] = encDict
			} else {
				p[col] = encPlain
			}
		case event.TypeDouble:
			if 8*d+indexBytes < c.values {
				p[col] = encDict
			}
		case event.TypeLong, event.TypeTimestamp, event.TypeInt:
			size := int64(8)
			if typ == event.TypeInt {
				size = 4
			}
			delta := c.deltaBits / 8
			if 4*c.runs <= 3*c.values {
				delta /= 4 // runs: deltas of zero, which zstd squeezes
			}
			if size*d+indexBytes < delta {
				p[col] = encDict
			}
		}
	}
	if s.rows >= bestFileRows {
		// Strings stored whole in a large file: without their shared
		// prefixes where that is smaller (the flights' numbered ids, a
		// month to a file: 2.46 -> 1.76 B/row). In smaller files zstd's
		// best level finds those repeats itself.
		for i, f := range s.ls.fields {
			if f.Type == event.TypeString && p[i] == encPlain && s.trial.deltaBytesPays(&s.cols[i].strs) {
				p[i] = encDeltaBytes
			}
		}
		if s.trial.deltaBytesPays(&s.ids) {
			p[n] = encDeltaBytes // _id, the first metadata column
		}
	}
	return p
}

// column returns the type and the file's column index of survey column i:
// the topic's fields, then _ingest_time.
func (s *encodingSurvey) column(i int) (event.FieldType, int) {
	if n := len(s.ls.fields); i == n {
		return event.TypeTimestamp, n + 4
	}
	return s.ls.fields[i].Type, i
}

// hashSet is a set of 64-bit hashes (open addressing, linear probing);
// zero is stored apart.
type hashSet struct {
	slots []uint64
	n     int
	zero  bool
}

func (h *hashSet) len() int {
	if h.zero {
		return h.n + 1
	}
	return h.n
}

func (h *hashSet) reset() {
	clear(h.slots)
	h.n, h.zero = 0, false
}

// add inserts v and reports whether it was new.
func (h *hashSet) add(v uint64) bool {
	if v == 0 {
		added := !h.zero
		h.zero = true
		return added
	}
	if 4*(h.n+1) > 3*len(h.slots) {
		h.grow()
	}
	mask := uint64(len(h.slots) - 1)
	for i := (v * 0x9E3779B97F4A7C15) >> 32 & mask; ; i = (i + 1) & mask {
		switch h.slots[i] {
		case v:
			return false
		case 0:
			h.slots[i] = v
			h.n++
			return true
		}
	}
}

func (h *hashSet) grow() {
	old := h.slots
	h.slots = make([]uint64, max(64, 2*len(old)))
	h.n = 0
	for _, v := range old {
		if v != 0 {
			h.add(v)
		}
	}
}
