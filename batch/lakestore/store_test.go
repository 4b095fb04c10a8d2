package lakestore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/internal/s3test"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stores runs f against a local directory and against the development S3
// server (skipped without it, failed under make test).
func stores(t *testing.T, f func(t *testing.T, s lakestore.Store)) {
	t.Run("dir", func(t *testing.T) {
		s, err := lakestore.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		f(t, s)
	})
	t.Run("s3", func(t *testing.T) { f(t, OpenS3(t)) })
}

// OpenS3 opens a store under a fresh prefix of the development S3 server.
func OpenS3(t *testing.T) lakestore.Store {
	t.Helper()
	srv := s3test.Env(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := lakestore.Open(ctx, lakestore.Config{
		URL: srv.URL(srv.Prefix(t, "lakestore")), Endpoint: srv.Endpoint, Region: srv.Region,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, PathStyle: true, SpillDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lakestore.CloseIdle(s) })
	return s
}

// held is the batch layer's view of an object read into memory whole.
type held interface{ Held() ([]byte, bool) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func keys(es []lakestore.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Key)
	}
	return out
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func TestWriteReadList(t *testing.T) {
	stores(t, func(t *testing.T, s lakestore.Store) {
		ctx := ctxT(t)
		w, err := s.Create(ctx, "t/dt=2026-01-01/hour=03/p0-0-9.parquet")
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("hello "))
		w.Write([]byte("world"))
		// Nothing is visible before the commit.
		if es, err := s.List(ctx, "t/", ""); err != nil || len(es) != 0 {
			t.Fatalf("before commit: %v %v", keys(es), err)
		}
		if _, err := s.Open(ctx, "t/dt=2026-01-01/hour=03/p0-0-9.parquet"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("open before commit: %v", err)
		}
		n, err := w.Commit(ctx, true)
		if err != nil || n != 11 {
			t.Fatalf("commit: %d %v", n, err)
		}
		o, err := s.Open(ctx, "t/dt=2026-01-01/hour=03/p0-0-9.parquet")
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		buf := make([]byte, 5)
		if _, err := o.ReadAt(buf, 6); err != nil || string(buf) != "world" || o.Size() != 11 {
			t.Fatalf("ReadAt: %q %v size %d", buf, err, o.Size())
		}
		// An object fetched from S3 holds its bytes for readers in place.
		if h, ok := o.(held); ok {
			if b, ok := h.Held(); !ok || string(b) != "hello world" {
				t.Fatalf("Held: %q %v", b, ok)
			}
		} else if _, isDir := s.(*lakestore.Dir); !isDir {
			t.Fatalf("%T holds nothing in memory", o)
		}
		for _, k := range []string{"t/_manifest/00000000000000000002.json", "t/_manifest/00000000000000000001.json", "t/dt=2026-01-01/hour=04/p1-0-9.parquet", "u/x"} {
			if err := s.WriteFile(ctx, k, []byte(k), true); err != nil {
				t.Fatal(err)
			}
		}
		es, err := s.List(ctx, "t/", "")
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"t/_manifest/00000000000000000001.json", "t/_manifest/00000000000000000002.json",
			"t/dt=2026-01-01/hour=03/p0-0-9.parquet", "t/dt=2026-01-01/hour=04/p1-0-9.parquet"}
		if got := keys(es); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("List t/: %v, want %v", got, want)
		}
		es, err = s.List(ctx, "t/_manifest/", "t/_manifest/00000000000000000001.json")
		if err != nil || fmt.Sprint(keys(es)) != "[t/_manifest/00000000000000000002.json]" {
			t.Fatalf("List after: %v %v", keys(es), err)
		}
		if es, err := s.List(ctx, "t/_manifest/0000", ""); err != nil || len(es) != 2 {
			t.Fatalf("List of a partial name: %v %v", keys(es), err)
		}
		if es, err := s.List(ctx, "nothing/", ""); err != nil || len(es) != 0 {
			t.Fatalf("List of nothing: %v %v", keys(es), err)
		}
		b, err := s.ReadFile(ctx, "u/x")
		if err != nil || string(b) != "u/x" {
			t.Fatalf("ReadFile: %q %v", b, err)
		}
		if _, err := s.ReadFile(ctx, "u/y"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("ReadFile of a missing key: %v", err)
		}
	})
}

func TestCreateOnly(t *testing.T) {
	stores(t, func(t *testing.T, s lakestore.Store) {
		ctx := ctxT(t)
		if err := s.WriteFile(ctx, "m/1", []byte("first"), true); err != nil {
			t.Fatal(err)
		}
		err := s.WriteFile(ctx, "m/1", []byte("second"), true)
		if !errors.Is(err, lakestore.ErrExists) {
			t.Fatalf("create-only over an existing key: %v", err)
		}
		if b, _ := s.ReadFile(ctx, "m/1"); string(b) != "first" {
			t.Fatalf("after a refused create: %q", b)
		}
		// Not exclusive: replaces.
		if err := s.WriteFile(ctx, "m/1", []byte("third"), false); err != nil {
			t.Fatal(err)
		}
		if b, _ := s.ReadFile(ctx, "m/1"); string(b) != "third" {
			t.Fatalf("after a replacing write: %q", b)
		}
	})
}

// TestCreateOnlyRace: of writers racing to create one key, exactly one
// wins, round after round, and the object is the winner's.
func TestCreateOnlyRace(t *testing.T) {
	stores(t, func(t *testing.T, s lakestore.Store) {
		ctx := ctxT(t)
		const writers, rounds = 6, 10
		for r := range rounds {
			key := fmt.Sprintf("race/%03d", r)
			var wg sync.WaitGroup
			won := make([]bool, writers)
			errs := make([]error, writers)
			for i := range writers {
				wg.Go(func() {
					w, err := s.Create(ctx, key)
					if err != nil {
						errs[i] = err
						return
					}
					w.Write(bytes.Repeat([]byte{byte('a' + i)}, 1000))
					_, err = w.Commit(ctx, true)
					switch {
					case err == nil:
						won[i] = true
					case !errors.Is(err, lakestore.ErrExists):
						errs[i] = err
					}
				})
			}
			wg.Wait()
			winner := -1
			for i := range writers {
				if errs[i] != nil {
					t.Fatalf("round %d writer %d: %v", r, i, errs[i])
				}
				if won[i] {
					if winner >= 0 {
						t.Fatalf("round %d: writers %d and %d both created %s", r, winner, i, key)
					}
					winner = i
				}
			}
			if winner < 0 {
				t.Fatalf("round %d: nobody created %s", r, key)
			}
			b, err := s.ReadFile(ctx, key)
			if err != nil || !bytes.Equal(b, bytes.Repeat([]byte{byte('a' + winner)}, 1000)) {
				t.Fatalf("round %d: object is not the winner's (%d bytes, %v)", r, len(b), err)
			}
		}
	})
}

func TestLargeObjects(t *testing.T) {
	stores(t, func(t *testing.T, s lakestore.Store) {
		ctx := ctxT(t)
		// Past the in-memory limit (staged in a file), and past the part
		// size (a multipart upload on S3).
		for _, n := range []int{9 << 20, 40 << 20} {
			key := fmt.Sprintf("big/%d", n)
			w, err := s.Create(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			body := pattern(n)
			for off := 0; off < n; off += 1 << 20 {
				w.Write(body[off:min(off+1<<20, n)])
			}
			if _, err := w.Commit(ctx, true); err != nil {
				t.Fatal(err)
			}
			o, err := s.Open(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 1000)
			if _, err := o.ReadAt(got, int64(n-1000)); err != nil || !bytes.Equal(got, body[n-1000:]) || o.Size() != int64(n) {
				t.Fatalf("%d bytes: tail differs (%v, size %d)", n, err, o.Size())
			}
			// Staged in a file, not in memory.
			if h, ok := o.(held); ok {
				if _, ok := h.Held(); ok {
					t.Fatalf("%d bytes held in memory", n)
				}
			}
			o.Close()
			// Create-only holds for large objects too.
			w, _ = s.Create(ctx, key)
			w.Write(body)
			if _, err := w.Commit(ctx, true); !errors.Is(err, lakestore.ErrExists) {
				t.Fatalf("%d bytes: second create: %v", n, err)
			}
		}
	})
}

// TestS3Download: an object streamed out is the object, small or past the
// in-memory limit; a missing one is fs.ErrNotExist.
func TestS3Download(t *testing.T) {
	s := OpenS3(t).(*lakestore.S3)
	ctx := ctxT(t)
	for _, n := range []int{0, 1000, 9 << 20} {
		key := fmt.Sprintf("download/%d", n)
		body := pattern(n)
		if err := s.WriteFile(ctx, key, body, true); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if m, err := s.Download(ctx, key, &got); err != nil || m != int64(n) || !bytes.Equal(got.Bytes(), body) {
			t.Fatalf("%d bytes: downloaded %d (%d in the buffer), equal %v: %v", n, m, got.Len(), bytes.Equal(got.Bytes(), body), err)
		}
	}
	if _, err := s.Download(ctx, "download/none", io.Discard); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a missing object: %v", err)
	}
}

func TestAbortDeleteRename(t *testing.T) {
	stores(t, func(t *testing.T, s lakestore.Store) {
		ctx := ctxT(t)
		w, err := s.Create(ctx, "a/b/c.parquet")
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("x"))
		w.Abort()
		if es, err := s.List(ctx, "", ""); err != nil || len(es) != 0 {
			t.Fatalf("after abort: %v %v", keys(es), err)
		}
		if err := s.WriteFile(ctx, "a/b/c.parquet", []byte("data"), true); err != nil {
			t.Fatal(err)
		}
		if err := s.Rename(ctx, "a/b/c.parquet", "a/b/.c.parquet.replaced"); err != nil {
			t.Fatal(err)
		}
		if es, _ := s.List(ctx, "a/", ""); fmt.Sprint(keys(es)) != "[a/b/.c.parquet.replaced]" {
			t.Fatalf("after rename: %v", keys(es))
		}
		if b, err := s.ReadFile(ctx, "a/b/.c.parquet.replaced"); err != nil || string(b) != "data" {
			t.Fatalf("renamed: %q %v", b, err)
		}
		if err := s.Delete(ctx, "a/b/.c.parquet.replaced", "a/b/never-was"); err != nil {
			t.Fatal(err)
		}
		if es, _ := s.List(ctx, "a/", ""); len(es) != 0 {
			t.Fatalf("after delete: %v", keys(es))
		}
	})
}

// TestListAfterSubdirectory: keys in a subdirectory sort among the others
// by their whole key: listed after a key past them, they are left out;
// after a key within the subdirectory, its later keys are listed.
func TestListAfterSubdirectory(t *testing.T) {
	stores(t, func(t *testing.T, s lakestore.Store) {
		ctx := ctxT(t)
		for _, k := range []string{"m/.p/1", "m/.p/2", "m/1", "m/2", "m/z/1"} {
			if err := s.WriteFile(ctx, k, []byte(k), true); err != nil {
				t.Fatal(err)
			}
		}
		for after, want := range map[string]string{
			"":       "[m/.p/1 m/.p/2 m/1 m/2 m/z/1]",
			"m/.p/1": "[m/.p/2 m/1 m/2 m/z/1]",
			"m/.p":   "[m/.p/1 m/.p/2 m/1 m/2 m/z/1]",
			"m/.p/9": "[m/1 m/2 m/z/1]",
			"m/1":    "[m/2 m/z/1]",
			"m/z/1":  "[]",
		} {
			es, err := s.List(ctx, "m/", after)
			if err != nil || fmt.Sprint(keys(es)) != want {
				t.Errorf("after %q: %v %v, want %s", after, keys(es), err, want)
			}
		}
	})
}

// TestListWide: a listing of a prefix with many directories, objects
// beside them and directories within them returns every object once, in
// key order (object storage lists the directories side by side).
func TestListWide(t *testing.T) {
	stores(t, func(t *testing.T, s lakestore.Store) {
		ctx := ctxT(t)
		want := []string{"w/0", "w/a.b", "w/a/1", "w/a/b/2", "w/ab", "w/z"}
		for d := range 40 {
			want = append(want, fmt.Sprintf("w/dt=%02d/hour=00/p0.parquet", d), fmt.Sprintf("w/dt=%02d/hour=01/p0.parquet", d))
		}
		for _, k := range append(slices.Clone(want), "v/1", "x/1") {
			if err := s.WriteFile(ctx, k, []byte(k), true); err != nil {
				t.Fatal(err)
			}
		}
		slices.Sort(want)
		es, err := s.List(ctx, "w/", "")
		if err != nil || !slices.Equal(keys(es), want) {
			t.Fatalf("List: %v %v, want %v", keys(es), err, want)
		}
		for _, e := range es {
			if e.Size != int64(len(e.Key)) || e.Modified.IsZero() {
				t.Errorf("%s: size %d, modified %v", e.Key, e.Size, e.Modified)
			}
		}
		if es, err := s.List(ctx, "none/", ""); err != nil || len(es) != 0 {
			t.Errorf("an empty prefix: %v %v", keys(es), err)
		}
	})
}

// TestCopy: a copy reads as its source, replaces what was at its key,
// keeps the source, and outlives it; a missing source is fs.ErrNotExist
// and writes nothing.
func TestCopy(t *testing.T) {
	stores(t, func(t *testing.T, s lakestore.Store) {
		ctx := ctxT(t)
		if err := s.WriteFile(ctx, "m/1.part.json", []byte("first"), true); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteFile(ctx, "m/2.part.json", []byte("older"), true); err != nil {
			t.Fatal(err)
		}
		if err := s.Copy(ctx, "m/1.part.json", "m/2.part.json"); err != nil {
			t.Fatal(err)
		}
		if err := s.Copy(ctx, "m/1.part.json", "n/3.part.json"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "m/1.part.json"); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"m/2.part.json", "n/3.part.json"} {
			if b, err := s.ReadFile(ctx, k); err != nil || string(b) != "first" {
				t.Errorf("%s: %q %v", k, b, err)
			}
		}
		err := s.Copy(ctx, "m/never-was.json", "m/4.part.json")
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("copying a missing object: %v", err)
		}
		if es, _ := s.List(ctx, "", ""); fmt.Sprint(keys(es)) != "[m/2.part.json n/3.part.json]" {
			t.Errorf("after copies: %v", keys(es))
		}
	})
}

func TestBadKeys(t *testing.T) {
	stores(t, func(t *testing.T, s lakestore.Store) {
		ctx := ctxT(t)
		for _, k := range []string{"", "/abs", "a/../b", "a//b", "..", "a/./b"} {
			if err := s.WriteFile(ctx, k, nil, true); err == nil {
				t.Errorf("key %q accepted", k)
			}
		}
	})
}

// TestDirLeavesNoTempFiles: a local store's committed and aborted writes
// leave only the committed files. A file being written is anonymous where
// the file system allows it (Linux: nothing in the directory until the
// commit, nothing left by a crash), else a hidden temporary file that
// directory readers skip.
func TestDirLeavesNoTempFiles(t *testing.T) {
	for _, anon := range []bool{true, false} {
		t.Run(fmt.Sprintf("anon=%v", anon), func(t *testing.T) {
			dir := t.TempDir()
			s, err := lakestore.NewDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !anon {
				lakestore.WithoutAnon(s)
			} else if !lakestore.Anon(s) {
				t.Skip("no anonymous files here")
			}
			ctx := ctxT(t)
			w, _ := s.Create(ctx, "x/y.parquet")
			w.Write([]byte("1"))
			var names []string
			filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if !d.IsDir() {
					names = append(names, d.Name())
				}
				return nil
			})
			switch {
			case anon && len(names) != 0:
				t.Fatalf("while writing: %v, want nothing", names)
			case !anon && (len(names) != 1 || !strings.HasPrefix(names[0], ".y.parquet.") || !strings.HasSuffix(names[0], lakestore.TempSuffix)):
				t.Fatalf("while writing: %v", names)
			}
			w.Commit(ctx, true)
			if b, err := os.ReadFile(filepath.Join(dir, "x", "y.parquet")); err != nil || string(b) != "1" {
				t.Fatalf("committed: %q %v", b, err)
			}
			ents, _ := os.ReadDir(filepath.Join(dir, "x"))
			if len(ents) != 1 {
				t.Fatalf("after commit: %d entries", len(ents))
			}
			// Replacing goes through a temporary name too, and leaves none.
			if err := s.WriteFile(ctx, "x/y.parquet", []byte("22"), false); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "x", "y.parquet")); err != nil || string(b) != "22" {
				t.Fatalf("replaced: %q %v", b, err)
			}
			if ents, _ := os.ReadDir(filepath.Join(dir, "x")); len(ents) != 1 {
				t.Fatalf("after replacing: %d entries", len(ents))
			}
			w, _ = s.Create(ctx, "x/z.parquet")
			w.Write([]byte("3"))
			w.Abort()
			if ents, _ := os.ReadDir(filepath.Join(dir, "x")); len(ents) != 1 {
				t.Fatalf("after an abort: %d entries", len(ents))
			}
		})
	}
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct{ in, bucket, prefix, err string }{
		{"s3://b", "b", "", ""},
		{"s3://b/", "b", "", ""},
		{"s3://b/lake/prod", "b", "lake/prod/", ""},
		{"s3://b/lake/", "b", "lake/", ""},
		{"http://b/x", "", "", "want s3://bucket/prefix"},
		{"s3:///x", "", "", "want s3://bucket/prefix"},
		{"s3://b/a/../c", "", "", "bad key"},
		{"s3://u:p@b/x", "", "", "want s3://bucket/prefix"},
	} {
		b, p, err := lakestore.ParseURL(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || b != c.bucket || p != c.prefix {
			t.Errorf("%s: %q %q %v", c.in, b, p, err)
		}
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	ctx := ctxT(t)
	for _, c := range []struct {
		cfg lakestore.Config
		err string
	}{
		{lakestore.Config{}, "neither a directory nor a URL"},
		{lakestore.Config{URL: "s3://b/x", Endpoint: "127.0.0.1:9000"}, "want http://host:port"},
		{lakestore.Config{URL: "s3://b/x", Endpoint: "http://127.0.0.1:1", AccessKeyID: "a"}, "go together"},
		// Nothing listens there: Open says so rather than failing later.
		{lakestore.Config{URL: "s3://b/x", Endpoint: "http://127.0.0.1:1", AccessKeyID: "a", SecretAccessKey: "b", PathStyle: true}, "cannot list s3://b/x/"},
	} {
		_, err := lakestore.Open(ctx, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.err)
		}
	}
}

// TestUnfinished: a write begun and never committed (a crash) is listed as
// unfinished under the key it was for, and discarded.
func TestUnfinished(t *testing.T) {
	t.Run("dir", func(t *testing.T) {
		ctx := ctxT(t)
		s, _ := lakestore.NewDir(t.TempDir())
		lakestore.WithoutAnon(s) // anonymous files leave nothing unfinished
		w, _ := s.Create(ctx, "t/dt=2026-01-01/p3-0-9.parquet")
		w.Write([]byte("x"))
		s.WriteFile(ctx, "t/dt=2026-01-01/p4-0-9.parquet", []byte("y"), true)
		ps, err := s.Unfinished(ctx, "t/")
		if err != nil || len(ps) != 1 || ps[0].Key != "t/dt=2026-01-01/p3-0-9.parquet" {
			t.Fatalf("Unfinished: %+v %v", ps, err)
		}
		if err := s.Discard(ctx, ps[0]); err != nil {
			t.Fatal(err)
		}
		if ps, _ := s.Unfinished(ctx, "t/"); len(ps) != 0 {
			t.Fatalf("after Discard: %+v", ps)
		}
		if es, _ := s.List(ctx, "t/", ""); fmt.Sprint(keys(es)) != "[t/dt=2026-01-01/p4-0-9.parquet]" {
			t.Fatalf("objects: %v", keys(es))
		}
		w.Abort()
	})
	t.Run("s3", func(t *testing.T) {
		ctx := ctxT(t)
		srv := s3test.Env(t)
		prefix := srv.Prefix(t, "lakestore")
		s, err := lakestore.Open(ctx, lakestore.Config{URL: srv.URL(prefix), Endpoint: srv.Endpoint, Region: srv.Region,
			AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, PathStyle: true})
		if err != nil {
			t.Fatal(err)
		}
		// A multipart upload a crashed writer began.
		key := prefix + "t/dt=2026-01-01/p3-0-9.parquet"
		if _, err := srv.Client().CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &srv.Bucket, Key: &key}); err != nil {
			t.Fatal(err)
		}
		ps, err := s.Unfinished(ctx, "t/")
		if err != nil || len(ps) != 1 || ps[0].Key != "t/dt=2026-01-01/p3-0-9.parquet" {
			t.Fatalf("Unfinished: %+v %v", ps, err)
		}
		if err := s.Discard(ctx, ps[0]); err != nil {
			t.Fatal(err)
		}
		if ps, _ := s.Unfinished(ctx, "t/"); len(ps) != 0 {
			t.Fatalf("after Discard: %+v", ps)
		}
	})
}

// TestGroup: objects committed through a group are visible as soon as
// their commit returns (before the group's Sync), create-only commits of
// a taken key fail with ErrExists and leave the object alone, Sync
// succeeds, and no unfinished write is left. On a directory, a write into
// a directory removed behind the store's back (after the store made it)
// makes it again.
func TestGroup(t *testing.T) {
	stores(t, func(t *testing.T, s lakestore.Store) {
		ctx := ctxT(t)
		g := lakestore.NewGroup(s)
		put := func(key string, data []byte) error {
			w, err := g.Create(ctx, key)
			if err != nil {
				return err
			}
			if _, err := w.Write(data); err != nil {
				return err
			}
			n, err := w.Commit(ctx, true)
			if err == nil && n != int64(len(data)) {
				t.Errorf("%s: committed %d bytes, want %d", key, n, len(data))
			}
			return err
		}
		want := map[string][]byte{
			"t/dt=2013-01-01/hour=00/a.parquet": pattern(10),
			"t/dt=2013-01-01/hour=01/b.parquet": pattern(300_000),
			"t/dt=2013-01-02/hour=00/c.parquet": pattern(1),
		}
		for key, data := range want {
			if err := put(key, data); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
		}
		es, err := s.List(ctx, "t/", "")
		if err != nil {
			t.Fatal(err)
		}
		if got := keys(es); len(got) != 3 {
			t.Fatalf("listed before Sync: %v, want the 3 objects", got)
		}
		if err := put("t/dt=2013-01-01/hour=00/a.parquet", pattern(5)); !errors.Is(err, lakestore.ErrExists) {
			t.Fatalf("create-only over a taken key: %v, want ErrExists", err)
		}
		if err := g.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		for key, data := range want {
			got, err := s.ReadFile(ctx, key)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s: read %d bytes (%v), want %d", key, len(got), err, len(data))
			}
		}
		if un, err := s.Unfinished(ctx, "t/"); err != nil || len(un) != 0 {
			t.Errorf("unfinished writes: %v %v, want none", un, err)
		}
		d, ok := s.(*lakestore.Dir)
		if !ok {
			return
		}
		if err := os.RemoveAll(d.Path("t/dt=2013-01-02")); err != nil {
			t.Fatal(err)
		}
		if err := put("t/dt=2013-01-02/hour=00/d.parquet", pattern(7)); err != nil {
			t.Fatalf("writing into a directory removed meanwhile: %v", err)
		}
		if err := g.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ReadFile(ctx, "t/dt=2013-01-02/hour=00/d.parquet"); err != nil || !bytes.Equal(got, pattern(7)) {
			t.Errorf("d.parquet: %d bytes, %v", len(got), err)
		}
	})
}
