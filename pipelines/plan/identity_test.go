package plan

import (
	"slices"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

func TestDefinitionHash(t *testing.T) {
	v := *designView()
	h := mustCompile(t, &v).Definition()
	same := v
	same.Window.Lateness *= 2
	same.Retention = pipelines.Duration(48 * time.Hour)
	if mustCompile(t, &same).Definition() != h {
		t.Error("lateness and retention changed the definition hash")
	}
	for name, change := range map[string]func(v *pipelines.View){
		"where":     func(v *pipelines.View) { v.Where = "cpu > 0" },
		"group_by":  func(v *pipelines.View) { v.GroupBy = []string{"host"} },
		"size":      func(v *pipelines.View) { v.Window.Size *= 2 },
		"aggregate": func(v *pipelines.View) { v.Aggregates = v.Aggregates[1:] },
	} {
		c := v
		c.GroupBy = slices.Clone(v.GroupBy)
		c.Aggregates = slices.Clone(v.Aggregates)
		change(&c)
		if mustCompile(t, &c).Definition() == h {
			t.Errorf("changing %s kept the definition hash", name)
		}
	}
}

// TestDefinitionHashPinned pins the definition hash of one view: it is kept
// in every speed checkpoint, so a different value would make every view
// recompute from the start of the log after an upgrade.
// docs/checkpoint-format.md specifies it.
func TestDefinitionHashPinned(t *testing.T) {
	v := designView()
	v.Aggregates = slices.Concat(v.Aggregates[:2], v.Aggregates[5:])
	if got, want := mustCompile(t, v).Definition(), uint64(0xf6199b152af7daee); got != want {
		t.Fatalf("definition hash %#x, want %#x", got, want)
	}
}
