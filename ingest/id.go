package ingest

import (
	"encoding/binary"
	"strconv"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// crockford is the ULID alphabet: base32 without I, L, O, U.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// idLen is the length of a generated id: 48 bits of milliseconds and 80
// random bits in 26 Crockford base32 characters, as a ULID.
const idLen = 26

// assignIDs gives every event without an id one, and reports which events
// are subject to deduplication: those whose id came from the client (their
// own, or <Idempotency-Key>:<i>). Generated ids are unique by construction
// and nobody can retry with them, so they are not remembered.
func (in *Ingest) assignIDs(events []event.Event, idempotencyKey string, now time.Time) []bool {
	dedupable := make([]bool, len(events))
	missing := 0
	for i := range events {
		if events[i].ID != "" {
			dedupable[i] = true
		} else {
			missing++
		}
	}
	if missing == 0 {
		return dedupable
	}
	if idempotencyKey != "" {
		for i := range events {
			if events[i].ID == "" {
				events[i].ID = idempotencyKey + ":" + strconv.Itoa(i)
				dedupable[i] = true
			}
		}
		return dedupable
	}
	// One random draw per request; the events of the request count up from
	// it (as a monotonic ULID), which keeps ids unique and time-ordered
	// without taking the lock per event.
	var rnd [10]byte
	in.rngMu.Lock()
	binary.BigEndian.PutUint64(rnd[:8], in.rng.Uint64())
	binary.BigEndian.PutUint16(rnd[8:], uint16(in.rng.Uint64()))
	in.rngMu.Unlock()
	hi := uint64(binary.BigEndian.Uint16(rnd[:2]))
	lo := binary.BigEndian.Uint64(rnd[2:])
	ms := uint64(now.UnixMilli())

	buf := make([]byte, missing*idLen)
	for k := range missing {
		encodeULID(buf[k*idLen:(k+1)*idLen], ms, hi, lo)
		lo++
		if lo == 0 {
			hi = (hi + 1) & 0xffff
		}
	}
	all := string(buf) // one allocation for the ids of the request
	k := 0
	for i := range events {
		if events[i].ID == "" {
			events[i].ID = all[k*idLen : (k+1)*idLen]
			k++
		}
	}
	return dedupable
}

// encodeULID writes the 128 bits ms(48) | hi(16) | lo(64) as 26 base32
// characters, most significant first (the first holds the top 3 bits).
func encodeULID(dst []byte, ms, hi, lo uint64) {
	// As two 64-bit halves: a = ms<<16 | hi, b = lo.
	a := ms<<16 | hi
	b := lo
	for i := idLen - 1; i >= 0; i-- {
		dst[i] = crockford[b&31]
		b = b>>5 | a<<59
		a >>= 5
	}
}
