package lakestore

// WithoutAnon makes d write files under temporary names, as on file
// systems without anonymous files.
func WithoutAnon(d *Dir) { d.anon = false }

// Anon tells whether d writes anonymous files.
func Anon(d *Dir) bool { return d.anon }
