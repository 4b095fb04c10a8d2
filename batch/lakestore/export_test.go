package lakestore

import "context"

// WithoutAnon makes d write files under temporary names, as on file
// systems without anonymous files.
func WithoutAnon(d *Dir) { d.anon = false }

// Anon tells whether d writes anonymous files.
func Anon(d *Dir) bool { return d.anon }

// ListOneByOne lists prefix of an S3 store one request after another, as
// its List did before it listed directories side by side.
func ListOneByOne(ctx context.Context, st Store, prefix string) ([]Entry, error) {
	return st.(*S3).list(ctx, prefix, "", 0)
}
