package lakestore

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// Dir is a store in a local directory. Objects are files; a new one is
// written in its final directory as an anonymous file (O_TMPFILE, where
// the file system has them) or under a hidden temporary name, fsynced,
// then given its name (create-only: linked, or renamed without replacing;
// replacing: renamed over the old), and the directory is fsynced (for
// objects of a Group, at the group's Sync): after a crash an object is
// there whole or not at all. Temporary names start with a dot and end in ".tmp", so readers of
// the directory (Hive-style datasets, globs over *.parquet) skip them.
type Dir struct {
	root string
	// anon says new files are written as anonymous files (O_TMPFILE)
	// and linked into place at commit: no temporary name to create and
	// remove again, nothing left behind by a crash.
	anon bool
	// synced holds the directories under root known to exist with a
	// durable entry in their parent (made, or first used, by this process
	// and synced since), so that writing into them needs no checks.
	synced sync.Map
}

var _ Store = (*Dir)(nil)

// NewDir returns the store rooted at dir, creating it if needed.
func NewDir(dir string) (*Dir, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lakestore: %w", err)
	}
	return &Dir{root: dir, anon: anonWorks(dir)}, nil
}

func (d *Dir) String() string { return d.root + "/" }

// Path returns the file of key (for messages and for readers that want the
// file itself).
func (d *Dir) Path(key string) string { return filepath.Join(d.root, filepath.FromSlash(key)) }

func (d *Dir) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", fmt.Errorf("lakestore: %w", err)
	}
	return d.Path(key), nil
}

// TempSuffix ends the names of files being written; TempName makes one.
const TempSuffix = ".tmp"

// TempName is the hidden temporary name a file of final name base is
// written under: "." + base + "." + 8 hex digits + ".tmp".
func TempName(base string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "." + base + "." + hex.EncodeToString(b[:]) + TempSuffix
}

func (d *Dir) Create(_ context.Context, key string) (Writer, error) {
	return d.create(key, nil)
}

// create starts the write of key; g, if not nil, is the group whose Sync
// makes it durable.
func (d *Dir) create(key string, g *dirGroup) (Writer, error) {
	final, err := d.path(key)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(final)
	// Directories whose entries are not known to be durable (made here, or
	// by a write that has not made them durable yet) have their parents
	// synced on commit.
	made := d.unsynced(dir)
	if len(made) > 0 {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("lakestore: %w", err)
		}
	}
	// Where the file system can, the file is written without a name (an
	// anonymous file in its directory, gone if the process dies) and given
	// its name at commit; otherwise under a hidden temporary name.
	var tmp string
	open := func() (*os.File, error) {
		if d.anon {
			return openAnon(dir)
		}
		tmp = filepath.Join(dir, TempName(filepath.Base(final)))
		return os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	}
	f, err := open()
	if errors.Is(err, fs.ErrNotExist) && len(made) == 0 {
		// The directory went away behind the cache's back.
		d.forget(dir)
		made = d.unsynced(dir)
		if err = os.MkdirAll(dir, 0o755); err == nil {
			f, err = open()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("lakestore: %w", err)
	}
	bw := bufPool.Get().(*bufio.Writer)
	bw.Reset(f)
	return &fileWriter{d: d, g: g, f: f, bw: bw, tmp: tmp, final: final, made: made}, nil
}

// bufPool holds the write buffers of files being written: a flush of a
// backfill writes thousands of small files, each of which would otherwise
// allocate (and clear) its own.
var bufPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 256<<10) }}

// unsynced returns dir and those of its ancestors under the root whose
// entries are not known to be durable, deepest first.
func (d *Dir) unsynced(dir string) []string {
	var out []string
	for p := dir; p != d.root && len(p) > len(d.root); p = filepath.Dir(p) {
		if _, ok := d.synced.Load(p); ok {
			break
		}
		out = append(out, p)
	}
	return out
}

// forget drops dir and its ancestors from the directories known to be
// durable.
func (d *Dir) forget(dir string) {
	for p := dir; p != d.root && len(p) > len(d.root); p = filepath.Dir(p) {
		d.synced.Delete(p)
	}
}

type fileWriter struct {
	d          *Dir
	g          *dirGroup
	f          *os.File
	bw         *bufio.Writer
	tmp, final string
	made       []string
	n          int64
	done       bool
}

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.bw.Write(p)
	w.n += int64(n)
	return n, err
}

// release gives the write buffer back.
func (w *fileWriter) release() {
	w.bw.Reset(nil)
	bufPool.Put(w.bw)
	w.bw = nil
}

func (w *fileWriter) Commit(_ context.Context, exclusive bool) (int64, error) {
	if w.done {
		return 0, errors.New("lakestore: writer already finished")
	}
	w.done = true
	err := w.bw.Flush()
	w.release()
	if err == nil {
		err = w.f.Sync()
	}
	anon := w.tmp == ""
	if err == nil && anon {
		// An anonymous file gets its name now: the final one, create-only
		// (a link fails if the name exists), or a temporary one that is
		// renamed over the old.
		if exclusive {
			err = linkAnon(w.f, w.final)
		} else {
			w.tmp = filepath.Join(filepath.Dir(w.final), TempName(filepath.Base(w.final)))
			err = linkAnon(w.f, w.tmp)
		}
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil, anon && exclusive:
	case exclusive:
		// Create-only and atomic: the name is taken only if free.
		err = renameNoReplace(w.tmp, w.final)
	default:
		err = os.Rename(w.tmp, w.final)
	}
	if err != nil {
		if w.tmp != "" {
			os.Remove(w.tmp)
		}
		if exclusive && errors.Is(err, fs.ErrExist) {
			return 0, fmt.Errorf("%w: %s", ErrExists, w.final)
		}
		return 0, fmt.Errorf("lakestore: writing %s: %w", w.final, err)
	}
	// The new entry is in the file's directory; directories made for it
	// are entries of their parents.
	dirs := make([]string, 0, 1+len(w.made))
	dirs = append(dirs, filepath.Dir(w.final))
	for _, m := range w.made {
		dirs = append(dirs, filepath.Dir(m))
	}
	if w.g != nil {
		w.g.add(dirs, w.made)
		return w.n, nil
	}
	if err := w.d.syncDirs(dirs, w.made); err != nil {
		return 0, fmt.Errorf("lakestore: writing %s: %w", w.final, err)
	}
	return w.n, nil
}

// syncDirs makes the entries of dirs durable, then records made (whose
// entries are in dirs) as durable.
func (d *Dir) syncDirs(dirs, made []string) error {
	for _, dir := range dirs {
		if err := syncDir(dir); err != nil {
			return err
		}
	}
	for _, m := range made {
		d.synced.Store(m, struct{}{})
	}
	return nil
}

func (w *fileWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.release()
	w.f.Close()
	if w.tmp != "" {
		os.Remove(w.tmp)
	}
}

type fileObject struct {
	*os.File
	size int64
	// mapped is the file mapped into memory by Map, unmapped by Close.
	mapped []byte
}

func (o *fileObject) Size() int64 { return o.size }

func (o *fileObject) Close() error {
	err := o.unmap()
	if cerr := o.File.Close(); err == nil {
		err = cerr
	}
	return err
}

func (d *Dir) Open(_ context.Context, key string) (Object, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("lakestore: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lakestore: %w", err)
	}
	return &fileObject{File: f, size: st.Size()}, nil
}

func (d *Dir) ReadFile(_ context.Context, key string) ([]byte, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("lakestore: %w", err)
	}
	return b, nil
}

func (d *Dir) WriteFile(ctx context.Context, key string, data []byte, exclusive bool) error {
	w, err := d.Create(ctx, key)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return fmt.Errorf("lakestore: %w", err)
	}
	_, err = w.Commit(ctx, exclusive)
	return err
}

// List walks the directory of the prefix's last slash. Only regular files
// are objects.
func (d *Dir) List(ctx context.Context, prefix, after string) ([]Entry, error) {
	base := d.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		if err := checkKey(prefix[:i]); err != nil {
			return nil, fmt.Errorf("lakestore: %w", err)
		}
		base = d.Path(prefix[:i])
	}
	var out []Entry
	err := filepath.WalkDir(base, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile, or no such prefix
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(d.root, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if de.IsDir() {
			// Skip directories that cannot hold a key with the prefix,
			// and those whose keys all sort before after (it is past
			// key/ and does not start with it).
			if path != base && (!strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") ||
				after > key+"/" && !strings.HasPrefix(after, key+"/")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !de.Type().IsRegular() || !strings.HasPrefix(key, prefix) || key <= after || isTemp(de.Name()) {
			return nil
		}
		info, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		out = append(out, Entry{Key: key, Size: info.Size(), Modified: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lakestore: listing %s: %w", base, err)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// isTemp tells the temporary files of writes from objects.
func isTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.HasSuffix(name, TempSuffix)
}

// tempTarget returns the name a temporary file was to be committed as.
func tempTarget(name string) (string, bool) {
	if !isTemp(name) {
		return "", false
	}
	s := strings.TrimSuffix(strings.TrimPrefix(name, "."), TempSuffix)
	i := strings.LastIndexByte(s, '.')
	if i <= 0 {
		return "", false
	}
	return s[:i], true
}

func (d *Dir) Unfinished(ctx context.Context, prefix string) ([]Pending, error) {
	base := d.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		base = d.Path(prefix[:i])
	}
	var out []Pending
	err := filepath.WalkDir(base, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		target, ok := tempTarget(de.Name())
		if de.IsDir() || !ok {
			return nil
		}
		rel, err := filepath.Rel(d.root, filepath.Join(filepath.Dir(path), target))
		if err != nil {
			return err
		}
		if key := filepath.ToSlash(rel); strings.HasPrefix(key, prefix) {
			out = append(out, Pending{Key: key, id: path})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lakestore: listing %s: %w", base, err)
	}
	return out, nil
}

func (d *Dir) Discard(_ context.Context, p Pending) error {
	if err := os.Remove(p.id); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("lakestore: %w", err)
	}
	return nil
}

func (d *Dir) Delete(_ context.Context, keys ...string) error {
	dirs := map[string]bool{}
	for _, k := range keys {
		p, err := d.path(k)
		if err != nil {
			return err
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("lakestore: %w", err)
		}
		dirs[filepath.Dir(p)] = true
	}
	for dir := range dirs {
		if err := syncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("lakestore: %w", err)
		}
	}
	return nil
}

// fromTo returns the paths of from and to, with to's directory made.
func (d *Dir) fromTo(from, to string) (pf, pt string, err error) {
	if pf, err = d.path(from); err != nil {
		return "", "", err
	}
	if pt, err = d.path(to); err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(filepath.Dir(pt), 0o755); err != nil {
		return "", "", fmt.Errorf("lakestore: %w", err)
	}
	return pf, pt, nil
}

func (d *Dir) Rename(_ context.Context, from, to string) error {
	pf, pt, err := d.fromTo(from, to)
	if err != nil {
		return err
	}
	if err := os.Rename(pf, pt); err != nil {
		return fmt.Errorf("lakestore: %w", err)
	}
	if err := syncDir(filepath.Dir(pt)); err != nil {
		return fmt.Errorf("lakestore: %w", err)
	}
	if filepath.Dir(pf) != filepath.Dir(pt) {
		if err := syncDir(filepath.Dir(pf)); err != nil {
			return fmt.Errorf("lakestore: %w", err)
		}
	}
	return nil
}

func (d *Dir) Copy(ctx context.Context, from, to string) error {
	pf, pt, err := d.fromTo(from, to)
	if err != nil {
		return err
	}
	dir := filepath.Dir(pt)
	// A link under a temporary name, renamed over to: what was at to is
	// replaced at once, never missing.
	tmp := filepath.Join(dir, TempName(filepath.Base(pt)))
	if err := os.Link(pf, tmp); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("lakestore: copying %s: %w", from, err)
		}
		// A file system without hard links: copy the bytes.
		b, rerr := d.ReadFile(ctx, from)
		if rerr != nil {
			return rerr
		}
		return d.WriteFile(ctx, to, b, false)
	}
	if err := os.Rename(tmp, pt); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("lakestore: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("lakestore: %w", err)
	}
	return nil
}

// syncDir makes the directory entries of dir (renames, links, removals)
// durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	// Some file systems cannot sync directories; their renames are ordered
	// by the journal instead.
	if errors.Is(err, os.ErrInvalid) || errors.Is(err, syscall.EINVAL) {
		err = nil
	}
	return err
}

// linkRemove moves from to to unless to exists: a hard link fails if the
// name exists (create-only, atomic), then from is removed.
func linkRemove(from, to string) error {
	if err := os.Link(from, to); err != nil {
		return err
	}
	return os.Remove(from)
}
