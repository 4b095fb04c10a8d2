package batch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/pipelines"
)

// answerLost is a store whose writes are stored but answered with an
// error, as when a stop or a timeout cuts the answer short, not the write.
type answerLost struct{ lakestore.Store }

func (s answerLost) Create(ctx context.Context, key string) (lakestore.Writer, error) {
	w, err := s.Store.Create(ctx, key)
	return lostWriter{w}, err
}

type lostWriter struct{ lakestore.Writer }

func (w lostWriter) Commit(ctx context.Context, exclusive bool) (int64, error) {
	if _, err := w.Writer.Commit(ctx, exclusive); err != nil {
		return 0, err
	}
	return 0, errors.New("injected: the answer was lost")
}

// TestCommitFileRemovesWhatFailed: a data file whose commit failed after the
// store took it is removed, so a reader of the directory never finds a file
// no manifest lists; a commit refused because the name is taken leaves the
// other writer's file alone.
func TestCommitFileRemovesWhatFailed(t *testing.T) { eachLake(t, testCommitFileRemovesWhatFailed) }

func testCommitFileRemovesWhatFailed(t *testing.T, at lakeAt) {
	p := testPipeline(t.TempDir(), []pipelines.Topic{testTopic("metrics", 1)}, nil)
	at.apply(p)
	st := openStore(t, p)
	ctx := context.Background()
	tl := &topicLake{topic: &pipelines.Topic{Name: "metrics"}, st: answerLost{st}}
	const path = "dt=2026-12-06/hour=04/p0-0-9.parquet"
	w, err := tl.st.Create(ctx, tl.key(path))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("rows")); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.commitFile(ctx, w, path, testLogger(t)); err == nil {
		t.Fatal("commit succeeded; want the injected error")
	}
	es, err := st.List(ctx, "metrics/dt=", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 0 {
		t.Fatalf("after the failed commit the lake holds %v, want nothing", es)
	}

	// Another writer's file under the name: refused, and left in place.
	other, err := st.Create(ctx, tl.key(path))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Write([]byte("theirs")); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Commit(ctx, true); err != nil {
		t.Fatal(err)
	}
	tl.st = st
	w, err = tl.st.Create(ctx, tl.key(path))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("ours")); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.commitFile(ctx, w, path, testLogger(t)); !errors.Is(err, lakestore.ErrExists) {
		t.Fatalf("commit over a taken name: %v, want ErrExists", err)
	}
	if es, err = st.List(ctx, "metrics/dt=", ""); err != nil || len(es) != 1 {
		t.Fatal(fmt.Errorf("after the refused commit: %v, %v; want the other writer's file", es, err))
	}
}

// recordLost stores manifest records but answers their writes with an
// error while fail is set; with failRetry the write that settles the
// outcome fails too (the store is out of reach).
type recordLost struct {
	lakestore.Store
	fail, failRetry bool
	writes          int
}

func (s *recordLost) WriteFile(ctx context.Context, key string, data []byte, exclusive bool) error {
	if !s.fail || !strings.HasSuffix(key, recordExt) {
		return s.Store.WriteFile(ctx, key, data, exclusive)
	}
	s.writes++
	if s.writes > 1 && s.failRetry {
		return errors.New("injected: the store is out of reach")
	}
	if err := s.Store.WriteFile(ctx, key, data, exclusive); err != nil {
		return err
	}
	if s.writes > 1 {
		return lakestore.ErrExists // the settling write finds its own record
	}
	return errors.New("injected: the answer was lost")
}

// TestCommitSettlesLostAnswers: a manifest record stored but answered with
// an error is recognised as committed (so no caller removes the files it
// lists); when the outcome cannot be learnt the error says so, and the
// commit is either there or not, never half.
func TestCommitSettlesLostAnswers(t *testing.T) {
	eachStore(t, func(t *testing.T, st lakestore.Store) {
		rl := &recordLost{Store: st, fail: true}
		ms := openMS(t, rl)
		h := periodOf(time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC).UnixMicro(), hourMicros)
		m, err := ms.commit(context.Background(), addFile(h, 0, 10))
		if err != nil {
			t.Fatalf("commit whose answer was lost: %v", err)
		}
		if m.Version != 1 || len(m.Files()) != 1 {
			t.Fatalf("version %d with %d files, want 1 and 1", m.Version, len(m.Files()))
		}
		if v := openMS(t, st).snapshot().Version; v != 1 {
			t.Fatalf("a fresh reader sees version %d, want 1", v)
		}

		rl.writes, rl.failRetry = 0, true
		_, err = ms.commit(context.Background(), addFile(h, 0, 5))
		if !errors.Is(err, errCommitUnknown) {
			t.Fatalf("commit with no answer at all: %v, want errCommitUnknown", err)
		}
		// The record did land: a reader finds the commit whole.
		if m := openMS(t, st).snapshot(); m.Version != 2 || m.partition(0).Next != 15 {
			t.Fatalf("a fresh reader sees version %d at offset %d, want 2 at 15", m.Version, m.partition(0).Next)
		}
	})
}
