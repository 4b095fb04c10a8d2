package batch

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
)

// barWidth is the number of cells of the progress bar.
const barWidth = 30

// RenderProgress draws a job's progress to w. On a terminal it redraws one
// line in place (carriage return, no newline; print a newline when the job
// is finished): a bar, N of M hours, rows/s and the ETA. Otherwise it
// writes one plain line per call, for logs and pipes.
func RenderProgress(w io.Writer, isTerminal bool, s api.JobStatus) {
	pct := 0.0
	if s.Total > 0 {
		pct = float64(s.Done) / float64(s.Total)
	} else if s.Finished() {
		pct = 1
	}
	stats := fmt.Sprintf("%d/%d hours  %s rows  %s rows/s", s.Done, s.Total, human(float64(s.Rows)), human(s.RowsPerSecond))
	switch {
	case s.State == api.JobRunning && s.ETASeconds > 0:
		stats += "  ETA " + (time.Duration(s.ETASeconds * float64(time.Second))).Round(time.Second).String()
	case s.State == api.JobFailed:
		stats += "  failed: " + s.Error
	case s.State != api.JobRunning:
		stats += "  " + string(s.State)
	}
	if !isTerminal {
		fmt.Fprintf(w, "job %s view %s: %s %3.0f%%  %s\n", s.ID, s.View, s.State, pct*100, stats)
		return
	}
	filled := int(pct * barWidth)
	bar := strings.Repeat("█", filled) + strings.Repeat("░", barWidth-filled)
	// \x1b[K clears what a longer previous line left behind.
	fmt.Fprintf(w, "\r%s %s %3.0f%% %s\x1b[K", s.View, bar, pct*100, stats)
}

// human formats a count with a k/M/G suffix.
func human(x float64) string {
	switch {
	case x >= 1e9:
		return fmt.Sprintf("%.2fG", x/1e9)
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.1fk", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}
