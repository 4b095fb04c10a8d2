package httpapi

import (
	"log/slog"
	"net/http"
	"time"
)

// quietPaths are answered to probes and scrapers every few seconds: their
// successes would drown the access log, their failures are logged.
var quietPaths = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// AccessLog logs every request h answers once it is answered (http.access_log):
// method, path with query, status, bytes of the body, time taken, client
// address and user agent; never a header, so never a token. Answers of 500
// and more are warnings, but for the probes'. now is the clock the time is
// read with.
func AccessLog(h http.Handler, logger *slog.Logger, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := now()
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = http.StatusOK // nothing written: net/http answers 200
		}
		quiet := quietPaths[r.URL.Path]
		if quiet && status < 400 {
			return
		}
		level := slog.LevelInfo
		if status >= 500 && !quiet {
			// A probe's 503 says the process is not ready: no fault.
			level = slog.LevelWarn
		}
		ms := float64(now().Sub(start).Microseconds()) / 1000
		logger.LogAttrs(r.Context(), level, "http request",
			slog.String("method", r.Method), slog.String("path", r.URL.RequestURI()),
			slog.Int("status", status), slog.Int64("bytes", rec.bytes),
			slog.Float64("duration_ms", ms),
			slog.String("remote", r.RemoteAddr), slog.String("user_agent", r.UserAgent()))
	})
}

// recorder notes the status and body bytes of an answer. It flushes
// (server-sent events stream through it) and unwraps, for
// http.ResponseController.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		if r.status == 0 {
			r.status = http.StatusOK
		}
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
