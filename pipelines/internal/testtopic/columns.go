package testtopic

import "github.com/lambdaflow/lambdaflow/pipelines/event"

// Columns lays events out as a columnar batch; with dict, string fields
// are dictionary-encoded (words in order of first appearance).
func Columns(schema event.Schema, evs []*event.Event, dict bool) *event.Columns {
	c := &event.Columns{Len: len(evs), Fields: make([]event.Column, len(schema))}
	for _, e := range evs {
		c.Time = append(c.Time, e.Time)
	}
	for f, fd := range schema {
		col := &event.Column{Read: true, Valid: make([]bool, len(evs))}
		index := map[string]int32{}
		for i, e := range evs {
			v := e.Values[f]
			col.Valid[i] = v.Valid
			switch {
			case fd.Type == event.TypeString && dict:
				w, ok := index[v.S]
				if !ok {
					w = int32(len(col.Words))
					index[v.S] = w
					col.Words = append(col.Words, v.S)
				}
				col.Idx = append(col.Idx, w)
			case fd.Type == event.TypeString:
				col.S = append(col.S, v.S)
			case fd.Type == event.TypeDouble:
				col.F = append(col.F, v.F)
			default:
				col.I = append(col.I, v.I)
			}
		}
		c.Fields[f] = *col
	}
	return c
}
