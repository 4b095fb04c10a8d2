package pipelines

import (
	"strings"

	"github.com/robfig/cron/v3"
)

// Cron parses the view's batch schedule: five fields (minute, hour, day of
// month, month, day of week) or a descriptor (@hourly, @every 10m). It
// returns nil without error when there is no schedule (the view is
// recomputed only on request). It is the one parser of schedules: validation
// reports its errors and the batch layer runs what it returns, so a schedule
// that validates is one that runs.
func (b ViewBatch) Cron() (cron.Schedule, error) {
	if strings.TrimSpace(b.Schedule) == "" {
		return nil, nil
	}
	return cron.ParseStandard(b.Schedule)
}
