package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"strconv"

	"golang.org/x/sync/errgroup"
)

// A checkpoint of a large lake lists its files in parts (format 3), so
// that writing it costs what changed since the previous checkpoint, not
// what the lake holds: a part none of whose files changed is copied from
// the previous checkpoint's (a link on a local directory, a server-side
// copy on object storage), and only parts with a changed file are encoded
// and written. The head, <v>.checkpoint.json, holds the partitions, the
// replaced files and the list of parts; part k is
// .parts/<v>.checkpoint.<k, 5 digits>.json. Their directory sorts before
// the versions, so the listings of the log after a version (two every
// commit) do not pass them: object storage starts after it, and a
// directory's walk skips .parts/. Each checkpoint has parts of its own
// name, so the clean-up that deletes a checkpoint deletes its parts with
// it, and a part copied from an older checkpoint outlives that one. Lakes
// of fewer than 2 × defaultPartFiles files keep writing format 2, the
// whole manifest in one object. docs/lake-format.md specifies the layout.
const (
	checkpointPartsFormat = 3
	// defaultPartFiles is how many file entries a part holds (0.5–1.5 MiB
	// of JSON, by the offset ranges of each file): a checkpoint's parts
	// are rewritten when one of their files changed, so smaller parts
	// rewrite less, and more of them cost a request each.
	defaultPartFiles = 2048
	partDigits       = 5
	partsDir         = ".parts/"
	// partConcurrency bounds the parts read or written at once.
	partConcurrency = 8
)

// checkpointPart is one part as the head lists it: the part's file
// entries and its size and CRC-32C, checked when it is read.
type checkpointPart struct {
	Files  int    `json:"files"`
	Bytes  int64  `json:"bytes"`
	CRC32C uint32 `json:"crc32c"`
}

// checkpointHead is a checkpoint in format 3.
type checkpointHead struct {
	Format     int              `json:"format"`
	Topic      string           `json:"topic"`
	Version    int64            `json:"version"`
	Partitions []partitionState `json:"partitions"`
	Parts      []checkpointPart `json:"parts"`
	Replaced   []replacedEntry  `json:"replaced,omitempty"`
}

// partBody is a part's object.
type partBody struct {
	Format int          `json:"format"`
	Topic  string       `json:"topic"`
	Files  []*fileEntry `json:"files"`
}

// partName is the file name of part k of the checkpoint of version v.
func partName(v int64, k int) string {
	s := strconv.Itoa(k)
	for len(s) < partDigits {
		s = "0" + s
	}
	return versionName(v) + ".checkpoint." + s + recordExt
}

// partKey is the key of part k of the checkpoint of version v.
func (s *manifestStore) partKey(v int64, k int) string {
	return s.dir + partsDir + partName(v, k)
}

// writtenCheckpoint is a checkpoint as the process wrote or read it: the
// manifest version and the parts its files are in (nil for format 2), so
// that the next checkpoint can copy the parts in which nothing changed.
type writtenCheckpoint struct {
	m     *manifest
	parts []checkpointPart
}

// partPlan is one part of a checkpoint to write: the files, in order, and
// the previous checkpoint's part that holds exactly them (-1: none, it is
// encoded and written).
type partPlan struct {
	files []*fileEntry
	from  int
}

// planParts splits m's files into parts of about size files, keeping the
// boundaries of prev's parts: a part of prev whose files are all still
// live, none changed (file entries are shared between the versions of a
// manifest and never modified, so the same pointer is the same entry) and
// none added among them, is kept as it is. The files of changed parts in
// a row are cut anew into parts of size (between size and 2 × size, fewer
// for the last), and a changed part left smaller than size/2 takes in the
// part after it, so that parts do not dwindle as files are merged.
func planParts(m *manifest, prev *writtenCheckpoint, size int) []partPlan {
	cur := make([]*fileEntry, 0, m.fileCount())
	for f := range m.all() {
		cur = append(cur, f)
	}
	var old []*fileEntry
	if prev != nil && len(prev.parts) > 0 {
		old = make([]*fileEntry, 0, prev.m.fileCount())
		for f := range prev.m.all() {
			old = append(old, f)
		}
		n := 0
		for _, p := range prev.parts {
			n += p.Files
		}
		if n != len(old) {
			old = nil // not the parts of that version: plan afresh
		}
	}
	var plan []partPlan
	var dirty []*fileEntry // changed files not yet cut into parts
	cut := func() {
		for len(dirty) > 0 {
			n := len(dirty)
			if n >= 2*size {
				n = size
			}
			plan = append(plan, partPlan{files: dirty[:n:n], from: -1})
			dirty = dirty[n:]
		}
	}
	i := 0 // next file of cur
	if old != nil {
		o := 0 // first file of old's part k
		for k, p := range prev.parts {
			end := o + p.Files
			// The files of cur in the part's key range: up to the next
			// part's first file (the first part also takes files before
			// the first, the last those after it).
			j := i
			for j < len(cur) && (end == len(old) || lessFile(cur[j], old[end])) {
				j++
			}
			same := j-i == p.Files
			for x := 0; same && x < p.Files; x++ {
				same = cur[i+x] == old[o+x]
			}
			switch {
			case same && len(dirty) > 0 && len(dirty) < size/2:
				// Too small alone: this part is written again with it.
				dirty = append(dirty, cur[i:j]...)
				cut()
			case same:
				cut()
				plan = append(plan, partPlan{files: cur[i:j:j], from: k})
			default:
				dirty = append(dirty, cur[i:j]...)
			}
			i, o = j, end
		}
	}
	dirty = append(dirty, cur[i:]...)
	cut()
	return plan
}

// writeParts writes the parts of the checkpoint of m: copies of prev's
// where plan says so (written anew when the copy fails), the others
// encoded.
func (s *manifestStore) writeParts(ctx context.Context, m *manifest, prev *writtenCheckpoint, plan []partPlan) ([]checkpointPart, error) {
	parts := make([]checkpointPart, len(plan))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(partConcurrency)
	for k, p := range plan {
		g.Go(func() error {
			key := s.partKey(m.Version, k)
			if p.from >= 0 {
				err := s.st.Copy(gctx, s.partKey(prev.m.Version, p.from), key)
				if err == nil {
					parts[k] = prev.parts[p.from]
					return nil
				}
				if gctx.Err() != nil {
					return err
				}
				// A copy is a shortcut: a source deleted meanwhile, or a
				// store that refuses copies, gets the part written.
				if !errors.Is(err, fs.ErrNotExist) {
					s.logger.Debug("lake: copying a checkpoint part; writing it instead", "topic", s.topic, "key", key, "err", err)
				}
			}
			b, err := appendPart(nil, s.topic, p.files)
			if err != nil {
				return err
			}
			if err := s.st.WriteFile(gctx, key, b, false); err != nil {
				return err
			}
			parts[k] = checkpointPart{Files: len(p.files), Bytes: int64(len(b)), CRC32C: crc32.Checksum(b, castagnoli)}
			return nil
		})
	}
	return parts, g.Wait()
}

// appendPart appends a part's object holding files to b.
func appendPart(b []byte, topic string, files []*fileEntry) ([]byte, error) {
	t, err := json.Marshal(topic)
	if err != nil {
		return nil, err
	}
	b = strconv.AppendInt(append(b, `{"format":`...), checkpointPartsFormat, 10)
	b = append(append(append(b, `,"topic":`...), t...), `,"files":[`...)
	for i, f := range files {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = f.appendJSON(b); err != nil {
			return nil, err
		}
	}
	return append(b, "]}"...), nil
}

// headJSON encodes the head of a checkpoint of m in parts.
func headJSON(m *manifest, parts []checkpointPart) ([]byte, error) {
	return json.Marshal(checkpointHead{Format: checkpointPartsFormat, Topic: m.Topic, Version: m.Version,
		Partitions: m.Partitions, Parts: parts, Replaced: m.Replaced})
}

// readParts reads the parts of the checkpoint of version v (as its head
// lists them) and returns their files in order. A part that is missing (the
// checkpoint was deleted meanwhile) is fs.ErrNotExist; one of another
// size or checksum than the head says, or not JSON, is corrupt.
func (s *manifestStore) readParts(ctx context.Context, v int64, parts []checkpointPart) ([]*fileEntry, error) {
	got := make([][]*fileEntry, len(parts))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(partConcurrency)
	for k, p := range parts {
		g.Go(func() error {
			key := s.partKey(v, k)
			b, err := s.st.ReadFile(gctx, key)
			if err != nil {
				return fmt.Errorf("lake: reading the manifest of %s: %w", s.topic, err)
			}
			if int64(len(b)) != p.Bytes || crc32.Checksum(b, castagnoli) != p.CRC32C {
				return fmt.Errorf("%w %s%s: %d bytes of CRC-32C %d, the checkpoint lists %d bytes of CRC-32C %d",
					ErrCorruptManifest, s.st, key, len(b), crc32.Checksum(b, castagnoli), p.Bytes, p.CRC32C)
			}
			var body partBody
			if err := json.Unmarshal(b, &body); err != nil {
				return fmt.Errorf("%w %s%s: %w", ErrCorruptManifest, s.st, key, err)
			}
			if body.Format != checkpointPartsFormat || body.Topic != s.topic || len(body.Files) != p.Files {
				return fmt.Errorf("%w %s%s: format %d, topic %q, %d files (the checkpoint lists %d)",
					ErrCorruptManifest, s.st, key, body.Format, body.Topic, len(body.Files), p.Files)
			}
			got[k] = body.Files
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var files []*fileEntry
	for _, fs := range got {
		files = append(files, fs...)
	}
	return files, nil
}
