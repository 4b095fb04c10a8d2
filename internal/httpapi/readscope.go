package httpapi

import "net/http"

// ReadScope is the read check of routes that read several topics at once
// and check each (SQL), which are Public at the mux and call it themselves.
// It returns what r's token may read: every topic for the read scope (or
// when reads are open), else the topics of its topics[].read_tokens.
// mayRead("") is what belongs to no topic, which only the read scope reads.
// A token that reads nothing gets Allow's denial for a read.
func (a *Auth) ReadScope(r *http.Request) (mayRead func(topic string) bool, d *Denial) {
	d = a.Allow(r, Read, "")
	if d == nil {
		return func(string) bool { return true }, nil
	}
	if d.Status == http.StatusBadRequest {
		return nil, d
	}
	tok, _ := Bearer(r.Header.Get("Authorization"))
	mine := a.tokens.TopicReads(tok)
	if len(mine) == 0 {
		return nil, d
	}
	return func(topic string) bool { return mine[topic] }, nil
}
