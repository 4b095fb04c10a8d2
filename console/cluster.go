package console

import (
	"context"
	"net/http"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
)

// ClusterLog is what GET /v1/cluster reads: the live processes on the log
// (*broker.Broker).
type ClusterLog interface {
	Cluster(ctx context.Context) (api.Cluster, error)
}

// ClusterRoutes serves GET /v1/cluster: every live process of the pipeline
// with its roles and the partitions it owns per consumer. Every process
// answers it, whatever its roles.
func ClusterRoutes(log ClusterLog) []httpapi.Route {
	return []httpapi.Route{{Pattern: "GET /v1/cluster", Access: httpapi.Read, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cl, err := log.Cluster(r.Context())
		if err != nil {
			writeLogError(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, cl)
	})}}
}
