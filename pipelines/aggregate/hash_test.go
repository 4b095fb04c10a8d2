package aggregate

import (
	"math"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// xxh64Vectors[n] is XXH64, seed 0, of the n bytes 0, 1, …, n-1, as the
// reference C implementation computes it. Inputs from 32 bytes on take
// XXH64's four-lane path, which state version 1 did not have.
var xxh64Vectors = [101]uint64{
	0xef46db3751d8e999, 0xe934a84adb052768, 0x4865a00ba85b7cd6, 0xe5c7bb4533bc65dd,
	0xffced8604453cc1e, 0xdd0274386e26030c, 0x438e2507bf950423, 0x14cc643f630c72d2,
	0x884a173614b81b8d, 0x67d85784a7c78c5b, 0xf76d60ec32541987, 0x652a564a95365aca,
	0x424af23f1f08dca5, 0x13d17c4c779723a8, 0x5cda8b69bbfc1d45, 0xa948f5f0f6abac2d,
	0x44b6ef2fb84169f7, 0x5603e60c527599b6, 0x50297af5a62c6c94, 0xf74e4b128deb27ae,
	0xa3e3fbe96798d8ac, 0x742b5135879d8608, 0xe85325844a45e58b, 0x9261c231bda56181,
	0xdd14a0292632be9b, 0x73f9acb5acbae666, 0xc2bf3773323881b0, 0xac2d59a1653fcb2b,
	0x1424bb04e9f164ff, 0x91b302cb6ee942e4, 0x76e444d8a036c867, 0xc346d2b59b4d8ee1,
	0xcbf59c5116ff32b4, 0x0c535d1acafb8ead, 0xfcd5494424f0c640, 0xf8c4b2dacbdcba83,
	0xdde0ef85e3aef05c, 0xd93fa2dfee5c24c9, 0x68367a0ec49135ca, 0x00a396ef1679a859,
	0xf5da40f1b11741e9, 0x0cf5f0ea71233ff0, 0x4e096c2d626cbdc8, 0x599bd13c3d820df7,
	0xa733d156db2bb292, 0x10fdd84d6409abdf, 0xf311d6de73d58535, 0x0d9883a03e7bfbb8,
	0x8fe437632da06964, 0xfeb66c71a897fc0f, 0x21044de93561a992, 0x1caae8c4c69354a7,
	0xbafd7b56910eeafd, 0x9a0bc735db8cff3a, 0x40dff9f7804ed13a, 0x511cd496994ea839,
	0x0cd869f80ff2b918, 0x714d82b2bae0ed0e, 0x471c1f758cb86bd7, 0xbf847336dbc5aa7d,
	0x41b11a75c6f245c5, 0xffe93b2f24455ed0, 0x66c42974c8c1ca8c, 0xe26aa9e2a95f8e4f,
	0xf7c67301db6713f0, 0xc31eb63b2ae4465b, 0xe13c3985248fce22, 0x37d336f497002ee1,
	0xff292fa9d227cc70, 0x218a050aec1c8635, 0x31a29a8d2666d1d8, 0x2ebffc96eb139d60,
	0xfb0b1f050cb8f00d, 0x305aedd01954df9d, 0x1cd9b1fe740e130f, 0x6fc255adbf28f264,
	0xbb844b530efa818a, 0x93f85c1b6280ead3, 0xc6f8e34e0b8b5a32, 0x5306130d1ba4b651,
	0xbabc069ffd7e24b3, 0x783f5e51838d51c5, 0x7679169e83bcf1e3, 0x20bbb2d0e80b780d,
	0x4a46f71edcf460fb, 0x57ff3bc62dc0a1f0, 0x46702d132f144754, 0xa8631e50d7fc2dc1,
	0xa6c906bd646a7f46, 0x9afd0605e351b678, 0xa3fb48b157a28483, 0x973d7abf3a7a7eea,
	0x4c8706d0bba44be2, 0xacc97aee2062f151, 0x37aa596ca6f5dedd, 0x9ad76ac12bad59a0,
	0x450baa11f6739216, 0xc93ec3db0dd47e34, 0x1b64e5bebcc25c77, 0x35e840c95abbc960,
	0x6ac1e58032166597,
}

// TestAggHashIsXXH64 pins the string hash of count_distinct states to XXH64
// over inputs of every length from 0 to 100 bytes: it is part of the state
// format (StateVersion) and must never change.
func TestAggHashIsXXH64(t *testing.T) {
	in := make([]byte, len(xxh64Vectors))
	for i := range in {
		in[i] = byte(i)
	}
	for n, want := range xxh64Vectors {
		if got := hashString(string(in[:n])); got != want {
			t.Errorf("hashString of %d bytes = %#x, XXH64 is %#x", n, got, want)
		}
	}
}

// TestAggHashNumbersStable pins the hash of numbers, XXH64's avalanche of
// their bits: unchanged since state version 1.
func TestAggHashNumbersStable(t *testing.T) {
	for _, c := range []struct {
		typ  event.FieldType
		v    event.Value
		want uint64
	}{
		{event.TypeLong, event.Value{I: 0}, 0x0},
		{event.TypeLong, event.Value{I: 1}, 0x283a72a5b9ab93d3},
		{event.TypeLong, event.Value{I: -1}, 0x100ab62daadd9289},
		{event.TypeLong, event.Value{I: math.MaxInt64}, 0x88055b16556ec944},
		{event.TypeTimestamp, event.Value{I: 1_700_000_000_000_000}, 0x113eddbc8c72f6c8},
		{event.TypeDouble, event.Value{F: 0}, 0x0},
		{event.TypeDouble, event.Value{F: math.Copysign(0, -1)}, 0x0},
		{event.TypeDouble, event.Value{F: 1.5}, 0xe885a72b46826202},
		{event.TypeDouble, event.Value{F: math.NaN()}, 0xe49564a7bad7e9d1},
		{event.TypeDouble, event.Value{F: math.Inf(-1)}, 0xe98a4c3b35513dc2},
	} {
		if got := hashValue(c.typ, &c.v); got != c.want {
			t.Errorf("hashValue(%v, %+v) = %#x, want %#x", c.typ, c.v, got, c.want)
		}
	}
}
