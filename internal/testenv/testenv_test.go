package testenv

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	calls := 0
	err := Poll(context.Background(), time.Minute, time.Millisecond, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Poll = %v after %d calls, want nil after 3", err, calls)
	}
	errNo := errors.New("never")
	if err := Poll(context.Background(), 5*time.Millisecond, time.Millisecond, func() error { return errNo }); !errors.Is(err, errNo) {
		t.Fatalf("Poll past its timeout = %v, want the last error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Poll(ctx, time.Minute, time.Millisecond, func() error { return errNo }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Poll with a cancelled context = %v", err)
	}
}

func TestCheckFor(t *testing.T) {
	calls := 0
	CheckFor(t, time.Minute, time.Millisecond, func() error {
		if calls++; calls < 5 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 5 {
		t.Fatalf("CheckFor returned after %d calls, want 5", calls)
	}
}

func TestCheckUntil(t *testing.T) {
	n := 0
	CheckUntil(t, time.Minute, time.Millisecond, "n to reach 2", func() bool { n++; return n == 2 })
	if n != 2 {
		t.Fatalf("CheckUntil returned after %d calls, want 2", n)
	}
}

func TestFreeAddr(t *testing.T) {
	addr := FreeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on the free address %s: %v", addr, err)
	}
	ln.Close()
}
