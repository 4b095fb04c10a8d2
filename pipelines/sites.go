package pipelines

import (
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// A topic with sources pulls the same topic of other sites into its own log
// (the mirror links, run by the ingest role). Its schema gets SiteField after
// the fields the file declares, so that every event of it says where it was
// first accepted: views group and filter by it like by any field, and the
// lake and sinks store it. The field is added when the file is loaded, before
// validation, so that a view's where and group_by are checked against it.

// addSiteFields appends SiteField to the schema of every topic with sources.
// A file cannot declare the field itself: field names start with a letter.
func addSiteFields(p *Pipeline) {
	for i := range p.Topics {
		t := &p.Topics[i]
		if len(t.Sources) > 0 && t.Schema.Index(SiteField) < 0 {
			t.Schema = append(t.Schema, event.Field{Name: SiteField, Type: event.TypeString, Required: true})
		}
	}
}

// IsSiteField reports whether f is the SiteField Lambdaflow added (as
// opposed to a field of the file, which cannot have that name).
func IsSiteField(f event.Field) bool { return f.Name == SiteField && f.Pos == (Pos{}) }

// checkSources checks topics[].sources: names, addresses and credentials.
// Whether a source's schema matches is known only once its site answers;
// the link reports that (docs/sites.md).
func (v *validator) checkSources(p *Pipeline) {
	self := p.SiteName()
	for i := range p.Topics {
		t := &p.Topics[i]
		first := map[string]string{} // site -> path of its first source
		for j := range t.Sources {
			s := &t.Sources[j]
			path := indexPath(indexPath("topics", i)+".sources", j)
			if s.Site != "" && s.Site == self {
				what := "the pipeline's name"
				if p.Site != "" {
					what = "site"
				}
				v.errorf(path+".site", "%s is this site's own name (%s); a source is another site", quote(s.Site), what)
			}
			if prev, dup := first[s.Site]; dup && s.Site != "" {
				v.errorf(path+".site", "duplicate source site %s for topic %s (first on line %d)", quote(s.Site), quote(t.Name), v.posOf(prev).Line)
			} else if s.Site != "" {
				first[s.Site] = path + ".site"
			}
			if s.URL != "" {
				v.natsURLs(path+".url", s.URL)
			}
			v.name(path+".topic", s.Topic, nameRe, nameRule)
			v.name(path+".prefix", s.Prefix, prefixRe, prefixRule)
			if s.Prefix == "" {
				v.errorf(path+".prefix", "must not be empty")
			}
			v.both(path+".auth", "user", s.Auth.User, "password", s.Auth.Password)
			v.both(path+".tls", "cert", s.TLS.Cert, "key", s.TLS.Key)
		}
	}
}
