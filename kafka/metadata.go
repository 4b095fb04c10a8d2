package kafka

import (
	"context"
	"crypto/sha256"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

// topicID is a topic's stable Kafka topic id, derived from the pipeline and
// topic names, so that every process of a pipeline reports the same one.
func (s *Server) topicID(name string) [16]byte {
	h := sha256.Sum256([]byte("lambdaflow\x00" + s.p.Name + "\x00" + name))
	var id [16]byte
	copy(id[:], h[:16])
	id[6] = id[6]&0x0f | 0x40 // a version-4 style UUID
	id[8] = id[8]&0x3f | 0x80
	return id
}

func (s *Server) clusterID() string { return "lambdaflow-" + s.p.Name }

// metadata answers Metadata: this process is the one broker, the leader of
// every partition of every topic. Several processes of one pipeline each
// say so of themselves, which is right: any of them appends to and reads
// from any partition of the shared log.
func (c *conn) metadata(_ context.Context, r *kmsg.MetadataRequest) kmsg.Response {
	s := c.s
	resp := kmsg.NewPtrMetadataResponse()
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = s.nodeID, s.host, s.port
	resp.Brokers = []kmsg.MetadataResponseBroker{b}
	cid := s.clusterID()
	resp.ClusterID = &cid
	resp.ControllerID = s.nodeID
	all := r.Topics == nil || (r.Version == 0 && len(r.Topics) == 0)
	var names []string
	if all {
		for i := range s.p.Topics {
			names = append(names, s.p.Topics[i].Name)
		}
	} else {
		for _, t := range r.Topics {
			if t.Topic != nil {
				names = append(names, *t.Topic)
			} else {
				names = append(names, s.topicByID(t.TopicID))
			}
		}
	}
	for _, name := range names {
		rt := kmsg.NewMetadataResponseTopic()
		n := name
		rt.Topic = &n
		t := s.topics[name]
		if t == nil {
			rt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		rt.TopicID = s.topicID(name)
		rt.Partitions = s.partitionsMeta(t)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (s *Server) partitionsMeta(t *pipelines.Topic) []kmsg.MetadataResponseTopicPartition {
	n := max(t.Partitions, 1)
	out := make([]kmsg.MetadataResponseTopicPartition, n)
	for i := range n {
		p := kmsg.NewMetadataResponseTopicPartition()
		p.Partition = int32(i)
		p.Leader = s.nodeID
		// -1: no leader epochs, so clients skip OffsetForLeaderEpoch checks
		// (the log is never truncated under them).
		p.LeaderEpoch = -1
		p.Replicas = []int32{s.nodeID}
		p.ISR = []int32{s.nodeID}
		out[i] = p
	}
	return out
}

// topicByID returns the name of the topic with Kafka id id, or "".
func (s *Server) topicByID(id [16]byte) string {
	for i := range s.p.Topics {
		if s.topicID(s.p.Topics[i].Name) == id {
			return s.p.Topics[i].Name
		}
	}
	return ""
}

// findCoordinator names this process as the coordinator of every group:
// group state lives in the log's key-value store, updated with
// compare-and-set, so any process coordinates any group consistently.
func (c *conn) findCoordinator(r *kmsg.FindCoordinatorRequest) kmsg.Response {
	s := c.s
	resp := kmsg.NewPtrFindCoordinatorResponse()
	keys := r.CoordinatorKeys
	if r.Version < 4 {
		keys = []string{r.CoordinatorKey}
	}
	for _, k := range keys {
		co := kmsg.NewFindCoordinatorResponseCoordinator()
		co.Key = k
		switch {
		case r.CoordinatorType != 0:
			// Transactions (type 1) are not supported.
			co.ErrorCode = kerr.CoordinatorNotAvailable.Code
			msg := "transactions are not supported"
			co.ErrorMessage = &msg
			co.NodeID = -1
		case !c.allowedGroup():
			co.ErrorCode = kerr.GroupAuthorizationFailed.Code
			co.NodeID = -1
		default:
			co.NodeID, co.Host, co.Port = s.nodeID, s.host, s.port
		}
		resp.Coordinators = append(resp.Coordinators, co)
	}
	if r.Version < 4 && len(resp.Coordinators) == 1 {
		co := resp.Coordinators[0]
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = co.ErrorCode, co.ErrorMessage, co.NodeID, co.Host, co.Port
	}
	return resp
}

// describeConfigs answers for topics with their retention and the
// settings clients look at; for the broker with an empty list.
func (c *conn) describeConfigs(r *kmsg.DescribeConfigsRequest) kmsg.Response {
	s := c.s
	resp := kmsg.NewPtrDescribeConfigsResponse()
	for _, res := range r.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = res.ResourceType, res.ResourceName
		switch res.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t := s.topics[res.ResourceName]
			if t == nil {
				rr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				break
			}
			maxBytes := int64(t.MaxBytes)
			if maxBytes == 0 {
				maxBytes = -1
			}
			for _, kv := range [][2]string{
				{"retention.ms", strconv.FormatInt(t.Retention.D().Milliseconds(), 10)},
				{"retention.bytes", strconv.FormatInt(maxBytes, 10)},
				{"cleanup.policy", "delete"},
				{"message.timestamp.type", "LogAppendTime"},
				{"max.message.bytes", strconv.Itoa(s.maxRequest)},
				{"min.insync.replicas", "1"},
			} {
				if len(res.ConfigNames) > 0 && !contains(res.ConfigNames, kv[0]) {
					continue
				}
				cfg := kmsg.NewDescribeConfigsResponseResourceConfig()
				v := kv[1]
				cfg.Name, cfg.Value, cfg.ReadOnly = kv[0], &v, true
				cfg.Source = kmsg.ConfigSourceDynamicTopicConfig
				rr.Configs = append(rr.Configs, cfg)
			}
		case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger:
			// Nothing a client can act on.
		default:
			rr.ErrorCode = kerr.InvalidRequest.Code
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// createTopics refuses: topics are defined by the pipeline file. A topic
// that exists is answered TOPIC_ALREADY_EXISTS, which clients that create
// their topics on start (Kafka Connect, Streams) accept.
func (c *conn) createTopics(r *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := kmsg.NewPtrCreateTopicsResponse()
	for _, t := range r.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		var msg string
		if spec := c.s.topics[t.Topic]; spec != nil {
			rt.ErrorCode = kerr.TopicAlreadyExists.Code
			msg = "topic " + strconv.Quote(t.Topic) + " exists (defined by the pipeline file)"
			rt.TopicID = c.s.topicID(t.Topic)
			rt.NumPartitions, rt.ReplicationFactor = int32(max(spec.Partitions, 1)), 1
		} else {
			rt.ErrorCode = kerr.PolicyViolation.Code
			msg = "topics are defined by the pipeline file; add " + strconv.Quote(t.Topic) + " under topics: there"
		}
		rt.ErrorMessage = &msg
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// describeCluster answers with this process as the only broker.
func (c *conn) describeCluster(_ *kmsg.DescribeClusterRequest) kmsg.Response {
	s := c.s
	resp := kmsg.NewPtrDescribeClusterResponse()
	resp.ClusterID = s.clusterID()
	resp.ControllerID = s.nodeID
	b := kmsg.NewDescribeClusterResponseBroker()
	b.NodeID, b.Host, b.Port = s.nodeID, s.host, s.port
	resp.Brokers = []kmsg.DescribeClusterResponseBroker{b}
	return resp
}
