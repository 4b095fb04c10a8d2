package httpapi

import (
	"net/http"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

// TopicReads are the read scopes by topic, for routes that read several
// topics at once and check each (SQL): auth.read_tokens read every topic,
// topics[].read_tokens read their own topic only. With auth.read_tokens
// empty, reads are open, as on every read route.
type TopicReads struct {
	all     tokenSet
	byTopic map[string]tokenSet
}

// NewTopicReads returns the read scopes of pipeline p.
func NewTopicReads(p *pipelines.Pipeline) *TopicReads {
	t := &TopicReads{all: newTokenSet(p.Auth.ReadTokens), byTopic: map[string]tokenSet{}}
	for i := range p.Topics {
		if s := newTokenSet(p.Topics[i].ReadTokens); len(s) > 0 {
			t.byTopic[p.Topics[i].Name] = s
		}
	}
	return t
}

// Scope returns what r's bearer token may read: mayRead reports it per
// topic ("" stands for what belongs to no topic, which only a token of
// auth.read_tokens reads). A request whose token reads nothing is denied
// 401. Such a route is Public at the mux and calls Scope itself.
func (t *TopicReads) Scope(r *http.Request) (mayRead func(topic string) bool, d *Denial) {
	if len(t.all) == 0 {
		return func(string) bool { return true }, nil
	}
	tok, _ := bearer(r.Header.Get("Authorization"))
	if t.all.has(tok) {
		return func(string) bool { return true }, nil
	}
	mine := map[string]bool{}
	for topic, s := range t.byTopic {
		if s.has(tok) {
			mine[topic] = true
		}
	}
	if len(mine) == 0 {
		return nil, &Denial{http.StatusUnauthorized, "a valid bearer token is required (auth.read_tokens, or topics[].read_tokens)"}
	}
	return func(topic string) bool { return mine[topic] }, nil
}
