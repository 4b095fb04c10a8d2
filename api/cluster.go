package api

import "time"

// Cluster answers GET /v1/cluster: every live process of the pipeline
// (on the same log), ordered by id.
type Cluster struct {
	Nodes []ClusterNode `json:"nodes"`
}

// ClusterNode is one live process.
type ClusterNode struct {
	// ID names the process for as long as it runs: its node name (the
	// host name unless set) and a random suffix, new at every start.
	ID string `json:"id"`
	// Roles are the roles it runs (run --role).
	Roles []string `json:"roles"`
	// Owns lists, per consumer (named as in GET /v1/lag), the partitions
	// this process reads for it now. Partition p of a consumer that reads
	// several topics (the lake writer, a sink with several sources) is
	// partition p of each of them.
	Owns map[string][]int `json:"owns"`
	// Seen is when the process last said it was alive.
	Seen time.Time `json:"seen"`
	// Addr is its HTTP address, when it serves HTTP.
	Addr string `json:"addr,omitempty"`
	// Started is when it joined.
	Started time.Time `json:"started"`
}
