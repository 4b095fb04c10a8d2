package pipelines

// What the external tests (package pipelines_test, which load whole files
// with the real sink types) use of the package's internals.

// MapEnv returns an environment lookup of the variables in m.
func MapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// KeyPath and IndexPath build YAML paths as messages write them.
var (
	KeyPath   = keyPath
	IndexPath = indexPath
)
