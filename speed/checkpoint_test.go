package speed

import (
	"slices"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

func TestDefinitionHash(t *testing.T) {
	p := testPipeline(t, pipelineOpts{})
	v := *p.ViewByName("all")
	tp := p.TopicByName("metrics")
	h := definitionHash(&v, tp)
	same := v
	same.Window.Lateness *= 2
	same.Retention *= 2
	if definitionHash(&same, tp) != h {
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
		if definitionHash(&c, tp) == h {
			t.Errorf("changing %s kept the definition hash", name)
		}
	}
}
