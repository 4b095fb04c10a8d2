package batch

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

// TestMetricsExistBeforeAnyWork: every topic's and view's series is there
// from the start, so "never ran" is visible (and alertable) at /metrics.
func TestMetricsExistBeforeAnyWork(t *testing.T) {
	reg := prometheus.NewRegistry()
	v := testView("cpu_by_region", "metrics")
	p := testPipeline(t.TempDir(), []pipelines.Topic{testTopic("metrics", 1)}, []pipelines.View{v})
	b, err := New(p, nil, nil, Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, mf := range mfs {
		series[mf.GetName()] = len(mf.GetMetric())
	}
	for _, name := range []string{
		"lambdaflow_lake_rows_total", "lambdaflow_lake_files_total", "lambdaflow_lake_compactions_total", "lambdaflow_lake_expired_files_total",
		"lambdaflow_lake_skipped_entries_total", "lambdaflow_batch_job_seconds", "lambdaflow_batch_rows_per_second",
		"lambdaflow_batch_last_success_timestamp_seconds", "lambdaflow_batch_job_failures_total",
		"lambdaflow_lake_files_held", "lambdaflow_lake_periods_held", "lambdaflow_lake_rows_held",
		"lambdaflow_lake_cache_bytes", "lambdaflow_lake_cache_files",
	} {
		if series[name] != 1 {
			t.Errorf("%s: %d series before any work, want 1", name, series[name])
		}
	}
	if series["lambdaflow_lake_cache_reads_total"] != 2 {
		t.Errorf("lambdaflow_lake_cache_reads_total: %d series before any work, want 2 (hit, miss)", series["lambdaflow_lake_cache_reads_total"])
	}
}
