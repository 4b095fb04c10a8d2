package httpapi

import (
	"net/http/httptest"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

func TestReadScope(t *testing.T) {
	auth := NewAuth(&pipelines.Pipeline{
		Auth: pipelines.Auth{ReadTokens: []string{"all"}},
		Topics: []pipelines.Topic{
			{Name: "a", ReadTokens: []string{"ra", "rab"}, WriteTokens: []string{"wa"}},
			{Name: "b", ReadTokens: []string{"rab"}},
			{Name: "c"},
		},
	})
	f := func(token, want string, status int) {
		t.Helper()
		r := httptest.NewRequest("POST", "/v1/sql", nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		may, d := auth.ReadScope(r)
		if d != nil {
			if d.Status != status {
				t.Errorf("token %q: denied %d %q, want %d", token, d.Status, d.Message, status)
			}
			return
		}
		got := ""
		for _, topic := range []string{"a", "b", "c", ""} {
			if may(topic) {
				got += "[" + topic + "]"
			}
		}
		if got != want || status != 200 {
			t.Errorf("token %q reads %s, want %s (status %d)", token, got, want, status)
		}
	}
	f("all", "[a][b][c][]", 200)
	f("ra", "[a]", 200)
	f("rab", "[a][b]", 200)
	f("wa", "", 403)
	f("nobody", "", 401)
	f("", "", 401)

	open := NewAuth(&pipelines.Pipeline{Topics: []pipelines.Topic{{Name: "a", ReadTokens: []string{"ra"}}}})
	if may, d := open.ReadScope(httptest.NewRequest("POST", "/v1/sql", nil)); d != nil || !may("a") || !may("") {
		t.Errorf("reads are open without auth.read_tokens: denial %v", d)
	}
}
