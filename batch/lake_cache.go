package batch

import (
	"container/list"
	"sync"
)

// fileCache keeps lake files fetched from object storage in memory for
// later reads: the views over one topic each recompute the same span, and
// a schedule recomputes much of the last span again, so without it every
// file is fetched again by every view and every run (on the flights year's
// hourly lake, 6,936 GETs a view). Lake files are never rewritten in place
// (a name is written once, create-only), and an entry is found by name,
// size and CRC-32C together, so a file is never served for another.
// The least recently read files go first once the bytes held pass max; a
// file larger than an eighth of max is not kept, so that one large file
// does not push out many small ones. A compaction reads its inputs twice
// (a survey of the merged rows, then the merge), the second time from the
// cache, and drops them once they are replaced. A lake in a directory is
// read through the operating system's page cache instead.
type fileCache struct {
	max     int64
	mu      sync.Mutex
	bytes   int64
	entries map[cacheKey]*list.Element // of *cacheEntry
	order   list.List                  // most recently read first
	metrics *metrics
}

type cacheKey struct {
	key   string
	size  int64
	crc32 uint32
}

// entry is what k says of its file, as a manifest entry says it.
func (k cacheKey) entry() fileEntry { return fileEntry{Bytes: k.size, CRC32C: k.crc32} }

type cacheEntry struct {
	k cacheKey
	b []byte
}

// newFileCache returns a cache of at most max bytes, or nil (no cache)
// when max is 0 or less.
func newFileCache(max int64, m *metrics) *fileCache {
	if max <= 0 {
		return nil
	}
	return &fileCache{max: max, entries: map[cacheKey]*list.Element{}, metrics: m}
}

// keyOf is fe's entry under store key: files without a checksum in the
// manifest (written before it had them) are not cached.
func keyOf(key string, fe fileEntry) (cacheKey, bool) {
	return cacheKey{key, fe.Bytes, fe.CRC32C}, fe.CRC32C != 0 && fe.Bytes > 0
}

// get returns the bytes of the file fe under store key, if held. They are
// shared: callers only read them.
func (c *fileCache) get(key string, fe fileEntry) ([]byte, bool) {
	k, ok := keyOf(key, fe)
	if c == nil || !ok {
		return nil, false
	}
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok {
		c.order.MoveToFront(e)
	}
	c.mu.Unlock()
	c.metrics.lakeCacheRead(ok)
	if !ok {
		return nil, false
	}
	return e.Value.(*cacheEntry).b, true
}

// put keeps b, the checked bytes of the file fe under store key, which
// no one writes to from now on.
func (c *fileCache) put(key string, fe fileEntry, b []byte) {
	k, ok := keyOf(key, fe)
	if c == nil || !ok || int64(len(b)) != fe.Bytes || fe.Bytes > c.max/8 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; ok {
		return
	}
	c.entries[k] = c.order.PushFront(&cacheEntry{k: k, b: b})
	c.bytes += fe.Bytes
	for c.bytes > c.max {
		c.remove(c.order.Back())
	}
	c.metrics.lakeCacheHeld(c.bytes, len(c.entries))
}

// drop forgets the file fe under store key (replaced by a compaction).
func (c *fileCache) drop(key string, fe fileEntry) {
	k, ok := keyOf(key, fe)
	if c == nil || !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok {
		c.remove(e)
		c.metrics.lakeCacheHeld(c.bytes, len(c.entries))
	}
}

// remove takes e out, under c.mu.
func (c *fileCache) remove(e *list.Element) {
	ce := e.Value.(*cacheEntry)
	c.order.Remove(e)
	delete(c.entries, ce.k)
	c.bytes -= int64(len(ce.b))
}
