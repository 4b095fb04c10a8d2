package kafka

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// API keys handled outside dispatch.
const (
	apiVersionsKey      = 18
	saslHandshakeKey    = 17
	saslAuthenticateKey = 36
)

// apiRange is a served API and its versions. The ranges are what current
// clients negotiate (librdkafka 2.x, the Java client 3.x and 4.x, franz-go),
// capped where a newer version would need something this listener does not
// have: Fetch 13+ and Produce 10+ address topics by id, ListOffsets 8+ asks
// for tiered-storage offsets, OffsetCommit/OffsetFetch 9+ belong to the
// KIP-848 consumer protocol.
type apiRange struct {
	key      int16
	min, max int16
}

var apis = []apiRange{
	{0, 3, 9},  // Produce (v3+: record batches, magic 2)
	{1, 4, 12}, // Fetch
	{2, 1, 7},  // ListOffsets
	{3, 0, 12}, // Metadata
	{8, 0, 8},  // OffsetCommit
	{9, 0, 8},  // OffsetFetch
	{10, 0, 4}, // FindCoordinator
	{11, 0, 9}, // JoinGroup
	{12, 0, 4}, // Heartbeat
	{13, 0, 5}, // LeaveGroup
	{14, 0, 5}, // SyncGroup
	{15, 0, 5}, // DescribeGroups
	{16, 0, 4}, // ListGroups
	{17, 0, 1}, // SaslHandshake (clients that know SaslAuthenticate use v1)
	{18, 0, 3}, // ApiVersions
	{19, 0, 7}, // CreateTopics (refused: topics come from the pipeline file)
	{22, 0, 4}, // InitProducerId
	{32, 0, 4}, // DescribeConfigs
	{36, 0, 2}, // SaslAuthenticate
	{60, 0, 1}, // DescribeCluster
}

func supported(key int16) (min, max int16, ok bool) {
	i := slices.IndexFunc(apis, func(a apiRange) bool { return a.key == key })
	if i < 0 {
		return 0, 0, false
	}
	return apis[i].min, apis[i].max, true
}

// apiVersions answers ApiVersions. A version newer than served is answered
// at version 0 with UNSUPPORTED_VERSION and the list, as Kafka does, so
// that the client retries with a version both know.
func (c *conn) apiVersions(h header, body []byte) error {
	resp := kmsg.NewPtrApiVersionsResponse()
	if h.version > 3 {
		h.version = 0
		resp.ErrorCode = kerr.UnsupportedVersion.Code
	} else {
		req := kmsg.NewPtrApiVersionsRequest()
		req.SetVersion(h.version)
		if req.IsFlexible() {
			var ok bool
			if body, ok = skipTags(body); !ok {
				return &errClose{"bad tagged fields in the ApiVersions request header"}
			}
		}
		// The body only names the client software; nothing depends on it.
		_ = req.ReadFrom(body)
	}
	for _, a := range apis {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = a.key, a.min, a.max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	return c.write(h, resp)
}
