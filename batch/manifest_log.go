package batch

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
)

// The manifest log of a topic lives under <topic>/_manifest/ (the leading
// underscore keeps Hive-style readers from taking it for data):
//
//	<v>.json             the commit record (Delta) of version v: the commit point
//	<v>.checkpoint.json  the whole Manifest at version v
//	_last_checkpoint.json {"version": v}: a hint where to start reading
//
// with v written as 20 decimal digits, so that keys sort by version. A
// commit writes one record, create-only: of several writers committing on
// top of version v, exactly one creates <v+1>.json; the others read it and
// try again on top of it; the one that created it confirms that the name
// was not one a checkpoint had freed (confirm). So a commit costs what it
// changes, not what the lake holds; checkpoints, written now and then,
// keep the records a reader replays few. docs/lake-format.md specifies
// the log.
const (
	manifestDir     = "_manifest"
	lastCheckpoint  = "_last_checkpoint.json"
	checkpointExt   = ".checkpoint.json"
	recordExt       = ".json"
	legacyManifest  = "_manifest.json" // format 1
	legacyLock      = "_manifest.lock"
	versionDigits   = 20
	checkpointEvery = 100 // commits at most between checkpoints
	// checkpointMinBytes: below this, records are not worth a checkpoint
	// by their size alone.
	checkpointMinBytes = 64 << 10
)

func versionName(v int64) string {
	s := strconv.FormatInt(v, 10)
	return strings.Repeat("0", max(0, versionDigits-len(s))) + s
}

// logKind is what an object of the manifest log is.
type logKind int

const (
	logRecord     logKind = iota // <v>.json
	logCheckpoint                // <v>.checkpoint.json
	logPart                      // <v>.checkpoint.<k>.json, a part of one
)

// parseLogKey reads a key's file name in the manifest log: its version and
// kind. ok is false for anything else.
func parseLogKey(key string) (v int64, kind logKind, ok bool) {
	name := key[strings.LastIndexByte(key, '/')+1:]
	switch {
	case strings.HasSuffix(name, checkpointExt):
		name, kind = strings.TrimSuffix(name, checkpointExt), logCheckpoint
	case strings.HasSuffix(name, recordExt):
		name = strings.TrimSuffix(name, recordExt)
		if i := strings.IndexByte(name, '.'); i >= 0 {
			k, err := strconv.Atoi(strings.TrimPrefix(name[i:], ".checkpoint."))
			if len(name[i:]) != len(".checkpoint.")+partDigits || err != nil || k < 0 {
				return 0, 0, false
			}
			name, kind = name[:i], logPart
		}
	default:
		return 0, 0, false
	}
	if len(name) != versionDigits {
		return 0, 0, false
	}
	v, err := strconv.ParseInt(name, 10, 64)
	return v, kind, err == nil && v >= 0
}

// manifestStore keeps one topic's manifest: it reads the log, follows what
// other processes commit, commits changes, writes checkpoints and hands out
// snapshots. Readers in this process pin the snapshot they read from, so
// that files it lists are not deleted under them.
type manifestStore struct {
	st     lakestore.Store
	topic  string
	dir    string // <topic>/_manifest/
	now    func() time.Time
	logger *slog.Logger

	commitMu sync.Mutex // serialises this process's commits

	mu   sync.Mutex // guards the fields below
	cur  *manifest
	pins map[int64]int // manifest version → readers holding it
	// The newest checkpoint known, its size, and the size of the records
	// after it: a checkpoint is due when they outgrow it.
	ckpt, ckptBytes, recBytes int64
	// written is the checkpoint this process last wrote or read whole,
	// whose unchanged parts the next checkpoint copies (nil: none).
	written *writtenCheckpoint
	// partFiles is the file entries of a checkpoint part; lakes of fewer
	// than twice as many files are checkpointed in one object.
	partFiles int
	// stale are unfinished writes of the log that recovery found for
	// versions the log did not hold yet: discarded once it does.
	stale map[lakestore.Pending]int64
}

// discardAt has the unfinished log write p discarded once the log holds
// version v (before, its writer may still be finishing it).
func (s *manifestStore) discardAt(p lakestore.Pending, v int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stale == nil {
		s.stale = map[lakestore.Pending]int64{}
	}
	s.stale[p] = v
}

// discardStale discards the unfinished log writes of versions up to v.
func (s *manifestStore) discardStale(ctx context.Context, v int64) {
	s.mu.Lock()
	var due []lakestore.Pending
	for p, pv := range s.stale {
		if pv <= v {
			due = append(due, p)
			delete(s.stale, p)
		}
	}
	s.mu.Unlock()
	for _, p := range due {
		if err := s.st.Discard(ctx, p); err != nil {
			s.logger.Warn("lake: discarding an unfinished manifest write", "topic", s.topic, "key", p.Key, "err", err)
		}
	}
}

func openManifestStore(ctx context.Context, st lakestore.Store, topic string, now func() time.Time, logger *slog.Logger) (*manifestStore, error) {
	s := &manifestStore{st: st, topic: topic, dir: topic + "/" + manifestDir + "/", now: now, logger: logger, pins: map[int64]int{}, partFiles: defaultPartFiles}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// ReadManifest reads the current manifest of a topic's lake in st; an
// empty lake is version 0.
func readManifest(ctx context.Context, st lakestore.Store, topic string) (*manifest, error) {
	s, err := openManifestStore(ctx, st, topic, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	return s.cur, nil
}

// load reads the manifest from scratch: the newest checkpoint, then the
// records after it. A record deleted under it (a checkpoint made it
// redundant meanwhile) makes it start again.
func (s *manifestStore) load(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := s.loadOnce(ctx)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt >= 5 {
			return err
		}
	}
}

func (s *manifestStore) loadOnce(ctx context.Context) error {
	after := ""
	if b, err := s.st.ReadFile(ctx, s.dir+lastCheckpoint); err == nil {
		var hint struct {
			Version int64 `json:"version"`
		}
		if json.Unmarshal(b, &hint) == nil && hint.Version > 0 {
			// Records up to the hinted checkpoint are not needed.
			after = s.dir + versionName(hint.Version) + "."
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("lake: reading the manifest of %s: %w", s.topic, err)
	}
	es, err := s.st.List(ctx, s.dir, after)
	if err != nil {
		return fmt.Errorf("lake: reading the manifest of %s: %w", s.topic, err)
	}
	if after != "" && !hasCheckpoint(es) {
		// The hint is stale or its checkpoint gone: read everything.
		if es, err = s.st.List(ctx, s.dir, ""); err != nil {
			return fmt.Errorf("lake: reading the manifest of %s: %w", s.topic, err)
		}
	}
	if len(es) == 0 {
		m, err := s.migrate(ctx)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.cur = m
		s.ckpt, s.ckptBytes, s.recBytes = m.Version, 0, 0
		s.mu.Unlock()
		return nil
	}
	// The newest checkpoint, if any, then every record after it.
	base := &manifest{Format: manifestFormat, Topic: s.topic}
	var ckptBytes int64
	var written *writtenCheckpoint
	for i := len(es) - 1; i >= 0; i-- {
		v, kind, ok := parseLogKey(es[i].Key)
		if !ok || kind != logCheckpoint {
			continue
		}
		m, parts, err := s.readCheckpoint(ctx, es[i].Key, v)
		if err != nil {
			return err
		}
		base, ckptBytes, written = m, es[i].Size, &writtenCheckpoint{m: m, parts: parts}
		for _, p := range parts {
			ckptBytes += p.Bytes
		}
		break
	}
	m, recBytes, err := s.replay(ctx, base, es)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || m.Version >= s.cur.Version {
		s.cur = m
	}
	s.ckpt, s.ckptBytes, s.recBytes = base.Version, ckptBytes, recBytes
	if written != nil && (s.written == nil || written.m.Version >= s.written.m.Version) {
		s.written = written
	}
	return nil
}

func hasCheckpoint(es []lakestore.Entry) bool {
	for _, e := range es {
		if _, kind, ok := parseLogKey(e.Key); ok && kind == logCheckpoint {
			return true
		}
	}
	return false
}

// readCheckpoint reads the checkpoint of version v at key, in format 2
// (the whole manifest) or 3 (a head and its parts, returned too).
func (s *manifestStore) readCheckpoint(ctx context.Context, key string, v int64) (*manifest, []checkpointPart, error) {
	b, err := s.st.ReadFile(ctx, key)
	if err != nil {
		return nil, nil, fmt.Errorf("lake: reading the manifest of %s: %w", s.topic, err)
	}
	// Either format in one pass: a head is a manifest with parts instead
	// of files.
	var j struct {
		manifestJSON
		Parts []checkpointPart `json:"parts"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, nil, fmt.Errorf("%w %s%s: %w", ErrCorruptManifest, s.st, key, err)
	}
	whole := j.Format == manifestFormat && j.Parts == nil
	inParts := j.Format == checkpointPartsFormat && j.Files == nil
	if !whole && !inParts || j.Version != v || j.Topic != s.topic {
		return nil, nil, fmt.Errorf("%w %s%s: format %d, version %d, topic %q, %d files, %d parts",
			ErrCorruptManifest, s.st, key, j.Format, j.Version, j.Topic, len(j.Files), len(j.Parts))
	}
	files := j.Files
	if inParts {
		if files, err = s.readParts(ctx, v, j.Parts); err != nil {
			return nil, nil, err
		}
	}
	m := &manifest{Format: manifestFormat, Topic: j.Topic, Version: j.Version, Partitions: j.Partitions, Replaced: j.Replaced}
	if err := m.setOrderedFiles(files); err != nil {
		return nil, nil, fmt.Errorf("%w %s%s: %w", ErrCorruptManifest, s.st, key, err)
	}
	if err := m.check(); err != nil {
		return nil, nil, fmt.Errorf("%w %s%s: %w", ErrCorruptManifest, s.st, key, err)
	}
	return m, j.Parts, nil
}

// replay applies the records among es that follow m, in order, and
// returns the result and the records' size. A gap in the versions means a
// record was deleted meanwhile (fs.ErrNotExist: read again from scratch).
func (s *manifestStore) replay(ctx context.Context, m *manifest, es []lakestore.Entry) (*manifest, int64, error) {
	var bytes int64
	for _, e := range es {
		v, kind, ok := parseLogKey(e.Key)
		if !ok || kind != logRecord || v <= m.Version {
			continue
		}
		if v != m.Version+1 {
			return nil, 0, fmt.Errorf("lake: manifest of %s: record %d follows %d: %w", s.topic, v, m.Version, fs.ErrNotExist)
		}
		d, err := s.readRecord(ctx, e.Key)
		if err != nil {
			return nil, 0, err
		}
		next, err := apply(m, d)
		if err != nil {
			return nil, 0, fmt.Errorf("%w %s%s: %w", ErrCorruptManifest, s.st, e.Key, err)
		}
		m, bytes = next, bytes+e.Size
	}
	return m, bytes, nil
}

func (s *manifestStore) readRecord(ctx context.Context, key string) (*delta, error) {
	b, err := s.st.ReadFile(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("lake: reading the manifest of %s: %w", s.topic, err)
	}
	d := new(delta)
	if err := json.Unmarshal(b, d); err != nil {
		return nil, fmt.Errorf("%w %s%s: %w", ErrCorruptManifest, s.st, key, err)
	}
	if d.Format != manifestFormat || d.Topic != s.topic {
		return nil, fmt.Errorf("%w %s%s: format %d, topic %q", ErrCorruptManifest, s.st, key, d.Format, d.Topic)
	}
	return d, nil
}

// refresh brings cur up to date with what other processes committed: one
// listing of the records after it (and nothing else when there are none).
func (s *manifestStore) refresh(ctx context.Context) error {
	s.mu.Lock()
	m := s.cur
	s.mu.Unlock()
	es, err := s.st.List(ctx, s.dir, s.dir+versionName(m.Version)+recordExt)
	if err != nil {
		return fmt.Errorf("lake: reading the manifest of %s: %w", s.topic, err)
	}
	next, bytes, err := s.replay(ctx, m, es)
	if errors.Is(err, fs.ErrNotExist) {
		return s.load(ctx)
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if next.Version > s.cur.Version {
		if s.cur.Version == m.Version {
			s.recBytes += bytes
		}
		s.cur = next
	}
	return nil
}

// snapshot returns the current manifest, with what other processes
// committed; callers must not modify it. When the log cannot be read, it
// returns the last manifest read (and logs why).
func (s *manifestStore) snapshot() *manifest {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.refresh(ctx); err != nil {
		s.logger.Warn("lake: reading the manifest", "topic", s.topic, "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// local returns the manifest as this process last read or wrote it,
// without reading the log.
func (s *manifestStore) local() *manifest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// pin returns the current manifest and a func that releases it; until
// released, files it lists are not deleted by this process.
func (s *manifestStore) pin() (*manifest, func()) {
	m := s.snapshot()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pins[m.Version]++
	var once sync.Once
	return m, func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.pins[m.Version]--; s.pins[m.Version] <= 0 {
				delete(s.pins, m.Version)
			}
		})
	}
}

// oldestPin returns the oldest pinned version, or -1 when none is pinned.
func (s *manifestStore) oldestPin() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := int64(-1)
	for v := range s.pins {
		if old < 0 || v < old {
			old = v
		}
	}
	return old
}

// change builds the delta of a commit from the manifest it will follow.
// It may be called several times: again on a newer manifest each time
// another writer committed first, so it must check there whatever the
// commit relies on (the partition's Next, its epoch, the files it
// replaces) and return an error if that no longer holds. A nil delta
// commits nothing.
type change func(m *manifest) (*delta, error)

// commit commits the delta ch builds on top of the newest manifest and
// returns the manifest it made. If ch fails, or the commit cannot be
// written, nothing changes.
func (s *manifestStore) commit(ctx context.Context, ch change) (*manifest, error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	// Build on the newest version, not on the one this process last saw:
	// records other processes committed since may have been deleted by
	// their checkpoints, and a record written on a version that old could
	// find its name free again (confirm).
	if err := s.refresh(ctx); err != nil {
		return nil, err
	}
	id := randomID()
	for {
		s.mu.Lock()
		m := s.cur
		s.mu.Unlock()
		d, err := ch(m)
		if err != nil {
			return nil, err
		}
		if d == nil || d.empty() {
			return m, nil
		}
		d.Format, d.Topic, d.Version, d.Commit, d.Time = manifestFormat, s.topic, m.Version+1, id, s.now().UnixMicro()
		next, err := apply(m, d)
		if err != nil {
			return nil, fmt.Errorf("lake: refusing a commit to %s: %w", s.topic, err)
		}
		b, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("lake: %w", err)
		}
		key := s.dir + versionName(d.Version) + recordExt
		err = s.st.WriteFile(ctx, key, b, true)
		if err != nil && !errors.Is(err, lakestore.ErrExists) {
			err = s.settle(ctx, key, b, id, err)
		}
		if errors.Is(err, lakestore.ErrExists) {
			// Another writer made this version, unless it is our own
			// write whose answer was lost and retried.
			if theirs, rerr := s.readRecord(ctx, key); rerr == nil && theirs.Commit == id {
				err = nil
			}
		}
		if errors.Is(err, lakestore.ErrExists) {
			if err := s.refresh(ctx); err != nil {
				return nil, err
			}
			continue
		}
		if err == nil {
			err = s.confirm(ctx, d.Version)
		}
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		if next.Version > s.cur.Version {
			s.cur = next
			s.recBytes += int64(len(b))
		}
		due := next.Version-s.ckpt >= checkpointEvery || s.recBytes >= max(s.ckptBytes, checkpointMinBytes)
		stale := len(s.stale) > 0
		s.mu.Unlock()
		if stale {
			s.discardStale(ctx, next.Version)
		}
		if due {
			if err := s.checkpoint(ctx, next); err != nil {
				// The commit stands; the next one tries again.
				s.logger.Warn("lake: writing a manifest checkpoint", "topic", s.topic, "version", next.Version, "err", err)
			}
		}
		return next, nil
	}
}

// confirm checks that the record just created for version v is the
// version's record, not a write into a freed name. Checkpoints delete the
// records they make redundant, so a writer that slept between reading
// version v-1 and writing <v>.json (a pause, a slow link, a manifest read
// long ago) may find that name free again although version v was made and
// deleted meanwhile: its create-only write succeeds, and readers never
// see it (they start from a checkpoint past it). A checkpoint of version v
// or later exists from then on, since checkpoints are written only on top
// of a version whose record existed and the newest two are always kept;
// while the record is the newest version, none does, because only the
// committer of a version checkpoints it, and this one does so after
// confirming. So no checkpoint at or past v means the commit holds; one
// means either a freed name or a commit that others built on and
// checkpointed within moments, which cannot be told apart cheaply: the
// outcome is unknown (errCommitUnknown), and the caller leaves its files
// for recovery and reads the manifest again.
func (s *manifestStore) confirm(ctx context.Context, v int64) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	es, err := s.st.List(cctx, s.dir, s.dir+versionName(v-1)+recordExt)
	if err != nil {
		return fmt.Errorf("%w: confirming version %d of %s: %w", errCommitUnknown, v, s.topic, err)
	}
	for _, e := range es {
		if cv, kind, ok := parseLogKey(e.Key); ok && kind == logCheckpoint && cv >= v {
			return fmt.Errorf("%w: the record of version %d of %s was written after checkpoint %d", errCommitUnknown, v, s.topic, cv)
		}
	}
	return nil
}

// landed settles a commit whose outcome was unknown (errCommitUnknown) by
// the newest manifest: it reports whether every one of paths, files only
// that commit could list (a flush's, named with its epoch; a merge's
// output), is live there. False leaves the outcome unknown: the commit did
// not land, has not landed yet, or its files were replaced since.
func (s *manifestStore) landed(paths ...string) bool {
	m := s.snapshot()
	for _, p := range paths {
		if !m.isLive(p) {
			return false
		}
	}
	return len(paths) > 0
}

// errCommitUnknown marks a commit that may or may not have been written:
// its record write failed and asking the store again failed too. Whoever
// made the commit's files must leave them: a record that did land lists
// them, and recovery removes them if none did.
var errCommitUnknown = errors.New("lake: the commit's outcome is unknown")

// settle decides the outcome of a record write that failed with err, which
// says nothing of whether the store took it (a stop or a timeout may cut
// the answer short, not the write). Writing the same record again,
// create-only and whatever ctx says, answers it: stored now, or refused
// because the version exists, ours (it was stored) or another writer's.
func (s *manifestStore) settle(ctx context.Context, key string, b []byte, id string, err error) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	werr := s.st.WriteFile(sctx, key, b, true)
	switch {
	case werr == nil:
		return nil
	case errors.Is(werr, lakestore.ErrExists):
		theirs, rerr := s.readRecord(sctx, key)
		if rerr != nil {
			return fmt.Errorf("%w: %w", errCommitUnknown, errors.Join(err, rerr))
		}
		if theirs.Commit == id {
			return nil
		}
		return werr
	default:
		return fmt.Errorf("%w: %w", errCommitUnknown, errors.Join(err, werr))
	}
}

// checkpoint writes m, points the hint at it and deletes the records and
// checkpoints that the previous checkpoint already made redundant: the
// newest two checkpoints (with their parts) and the records after the
// older stay, so a reader part way through reading the previous one can
// finish. A lake of 2 × partFiles files or more is written in parts, the
// previous checkpoint's unchanged ones copied (manifest_parts.go).
func (s *manifestStore) checkpoint(ctx context.Context, m *manifest) error {
	s.mu.Lock()
	prevWritten, partFiles := s.written, s.partFiles
	s.mu.Unlock()
	var b []byte
	var parts []checkpointPart
	var err error
	size := int64(0)
	if partFiles > 0 && m.fileCount() >= 2*partFiles {
		if parts, err = s.writeParts(ctx, m, prevWritten, planParts(m, prevWritten, partFiles)); err != nil {
			return err
		}
		b, err = headJSON(m, parts)
		for _, p := range parts {
			size += p.Bytes
		}
	} else {
		b, err = m.MarshalJSON() // not json.Marshal, which would scan it all again
	}
	if err != nil {
		return fmt.Errorf("lake: %w", err)
	}
	size += int64(len(b))
	key := s.dir + versionName(m.Version) + checkpointExt
	err = s.st.WriteFile(ctx, key, b, true)
	// Exists: another process took the same format-1 manifest over at
	// once. Its checkpoint holds the same files, but its parts are not
	// known to be these: the next checkpoint does not copy them.
	created := err == nil
	if err != nil && !errors.Is(err, lakestore.ErrExists) {
		return err
	}
	hint, _ := json.Marshal(map[string]int64{"version": m.Version})
	if err := s.st.WriteFile(ctx, s.dir+lastCheckpoint, hint, false); err != nil {
		return err
	}
	s.mu.Lock()
	prev := s.ckpt
	if m.Version > s.ckpt {
		s.ckpt, s.ckptBytes, s.recBytes = m.Version, size, 0
	}
	if created && (s.written == nil || m.Version > s.written.m.Version) {
		s.written = &writtenCheckpoint{m: m, parts: parts}
	}
	s.mu.Unlock()
	if prev <= 0 {
		return nil
	}
	es, err := s.st.List(ctx, s.dir, "")
	if err != nil {
		return err
	}
	var old []string
	for _, e := range es {
		if v, kind, ok := parseLogKey(e.Key); ok && (v < prev || (v == prev && kind == logRecord)) {
			old = append(old, e.Key)
		}
	}
	return s.st.Delete(ctx, old...)
}

// migrate takes over a lake whose manifest is in format 1 (one
// _manifest.json, rewritten whole on every commit): it becomes the first
// checkpoint of the log, and the old file goes. A lake with neither is
// empty (version 0).
func (s *manifestStore) migrate(ctx context.Context) (*manifest, error) {
	empty := &manifest{Format: manifestFormat, Topic: s.topic}
	old := s.topic + "/" + legacyManifest
	b, err := s.st.ReadFile(ctx, old)
	if errors.Is(err, fs.ErrNotExist) {
		// Empty, unless another process took the old file over since the
		// log was listed: then the log is read again.
		if es, err := s.st.List(ctx, s.dir, ""); err != nil || len(es) > 0 {
			return nil, fmt.Errorf("lake: manifest of %s changed while read: %w", s.topic, fs.ErrNotExist)
		}
		return empty, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lake: reading %s%s: %w", s.st, old, err)
	}
	m, err := fromFormat1(b, s.topic)
	if err != nil {
		return nil, fmt.Errorf("%w %s%s: %w", ErrCorruptManifest, s.st, old, err)
	}
	if m.Version > 0 {
		if err := s.checkpoint(ctx, m); err != nil {
			return nil, fmt.Errorf("lake: taking over %s%s: %w", s.st, old, err)
		}
	}
	if err := s.st.Delete(ctx, old, s.topic+"/"+legacyLock); err != nil {
		return nil, err
	}
	s.logger.Info("lake: manifest taken over from format 1", "topic", s.topic, "version", m.Version, "files", m.fileCount())
	return m, nil
}

// fromFormat1 converts a format-1 manifest: each file held one partition's
// range in one hour.
func fromFormat1(b []byte, topic string) (*manifest, error) {
	var v1 struct {
		Format     int              `json:"format"`
		Topic      string           `json:"topic"`
		Version    int64            `json:"version"`
		Partitions []partitionState `json:"partitions"`
		Files      []struct {
			Path      string `json:"path"`
			Hour      int64  `json:"hour"`
			Partition int    `json:"partition"`
			First     int64  `json:"first"`
			Last      int64  `json:"last"`
			Rows      int64  `json:"rows"`
			Bytes     int64  `json:"bytes"`
			CRC32C    uint32 `json:"crc32c"`
			MinTime   int64  `json:"min_time"`
			MaxTime   int64  `json:"max_time"`
			Added     int64  `json:"added"`
			Compacted bool   `json:"compacted"`
		} `json:"files"`
		Replaced []replacedEntry `json:"replaced"`
	}
	if err := json.Unmarshal(b, &v1); err != nil {
		return nil, err
	}
	if v1.Format != 1 || v1.Topic != topic {
		return nil, fmt.Errorf("format %d topic %q, want format 1 of %q", v1.Format, v1.Topic, topic)
	}
	m := &manifest{Format: manifestFormat, Topic: topic, Version: v1.Version, Partitions: v1.Partitions, Replaced: v1.Replaced}
	var files []*fileEntry
	for _, f := range v1.Files {
		files = append(files, &fileEntry{
			Path: f.Path, Start: f.Hour, End: f.Hour + hourMicros,
			Ranges: []offsetRange{{Partition: f.Partition, First: f.First, Last: f.Last, Rows: f.Rows}},
			Rows:   f.Rows, Bytes: f.Bytes, CRC32C: f.CRC32C, MinTime: f.MinTime, MaxTime: f.MaxTime,
			Added: f.Added, Compacted: f.Compacted,
		})
		for i := range m.Partitions {
			if ps := &m.Partitions[i]; ps.Partition == f.Partition {
				if ps.Rows == 0 || f.MaxTime > ps.MaxTime {
					ps.MaxTime = f.MaxTime
				}
				ps.Rows += f.Rows
			}
		}
	}
	sortPartitions(m.Partitions)
	if err := m.setFiles(files); err != nil {
		return nil, err
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

func sortPartitions(ps []partitionState) {
	slices.SortFunc(ps, func(a, b partitionState) int { return cmp.Compare(a.Partition, b.Partition) })
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
