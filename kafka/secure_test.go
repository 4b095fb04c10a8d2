package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// authSetup has a read token and a write token for the topic.
var authSetup = setup{
	topic: "    write_tokens: [writer-secret]",
	extra: "auth: {read_tokens: [reader-secret]}",
}

func saslPlain(pass string) kgo.Opt {
	return kgo.SASL(plain.Auth{User: "app", Pass: pass}.AsMechanism())
}

// TestSASLScopes: SASL/PLAIN passwords are the pipeline's tokens, with
// their scopes; bad credentials are refused.
func TestSASLScopes(t *testing.T) {
	e := startWith(t, authSetup)
	ctx := context.Background()
	manual := kgo.RecordPartitioner(kgo.ManualPartitioner())

	// The write token produces.
	w := e.client(saslPlain("writer-secret"), manual)
	if r, err := w.ProduceSync(ctx, record(0, "s-1", sample(1, "h"))).First(); err != nil || r.Offset != 0 {
		t.Fatalf("produce with the write token: %v", err)
	}
	// ...but may not read.
	if _, err := listEnd(ctx, w); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("list offsets with the write token: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	// The read token reads, but may not produce.
	rd := e.client(saslPlain("reader-secret"), manual, kgo.ConsumeTopics("metrics"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if got := consume(t, rd, 1); string(got[0].Headers[0].Value) != "s-1" {
		t.Errorf("read %q", got[0].Headers[0].Value)
	}
	if err := rd.ProduceSync(ctx, record(0, "s-2", sample(2, "h"))).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("produce with the read token: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	// Without SASL nothing is allowed where tokens are configured.
	anon := e.client(manual)
	if err := anon.ProduceSync(ctx, record(0, "s-3", sample(3, "h"))).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("produce without SASL: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	// A wrong password fails authentication.
	bad := e.client(saslPlain("guess"), manual, kgo.RequestRetries(0))
	short, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(short, bad); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("metadata with a bad password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	if bd, _ := e.b.Bounds(ctx, "metrics", 0); bd.End != 1 {
		t.Errorf("partition 0 holds %d events, want 1", bd.End)
	}
}

// listEnd asks for partition 0's end offset.
func listEnd(ctx context.Context, cl *kgo.Client) (int64, error) {
	req := kmsgListOffsets("metrics", 0, -1)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, err
	}
	p := resp.Topics[0].Partitions[0]
	return p.Offset, kerr.ErrorForCode(p.ErrorCode)
}

// TestKcatSASL: librdkafka authenticates with SASL/PLAIN; a bad password
// is refused.
func TestKcatSASL(t *testing.T) {
	kcat := tool(t, "kcat", "Debian package kcat")
	e := startWith(t, authSetup)
	sasl := func(pass string) []string {
		return []string{"-b", e.addr, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=PLAIN",
			"-X", "sasl.username=app", "-X", "sasl.password=" + pass}
	}
	out, err := run(t, sample(1, "h")+"\n", kcat, append(sasl("writer-secret"), "-t", "metrics", "-P", "-p", "0", "-H", "id=ok")...)
	if err != nil {
		t.Fatalf("kcat produce with the write token: %v\n%s", err, out)
	}
	out, err = run(t, "", kcat, append(sasl("reader-secret"), "-C", "-t", "metrics", "-p", "0", "-o", "beginning", "-e", "-q", "-f", `%o %h\n`)...)
	if err != nil || out != "0 id=ok\n" {
		t.Fatalf("kcat consume with the read token: %v\n%s", err, out)
	}
	out, err = run(t, "", kcat, append(sasl("guess"), "-L", "-m", "5")...)
	if err == nil || !strings.Contains(out, "SASL authentication error: invalid credentials") {
		t.Errorf("kcat with a bad password: err %v\n%s", err, out)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lambdaflow-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLS: the listener speaks TLS to franz-go and to kcat; a plaintext
// client gets nowhere.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := writeCert(t, t.TempDir())
	e := start(t, ", tls: {cert: "+certFile+", key: "+keyFile+"}", "")
	ctx := context.Background()
	cl := e.client(kgo.DialTLSConfig(&tls.Config{RootCAs: pool}), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if r, err := cl.ProduceSync(ctx, record(1, "tls-1", sample(1, "h"))).First(); err != nil || r.Offset != 0 {
		t.Fatalf("produce over TLS: %v", err)
	}
	plainCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	plainCl := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequestRetries(0))
	if err := plainCl.ProduceSync(plainCtx, record(1, "plain", sample(2, "h"))).FirstErr(); err == nil {
		t.Errorf("a plaintext client produced to the TLS listener")
	}

	kcat := tool(t, "kcat", "Debian package kcat")
	out, err := run(t, "", kcat, "-b", e.addr, "-X", "security.protocol=ssl", "-X", "ssl.ca.location="+certFile,
		"-C", "-t", "metrics", "-p", "1", "-o", "beginning", "-e", "-q", "-f", `%o %h\n`)
	if err != nil || out != "0 id=tls-1\n" {
		t.Errorf("kcat over TLS: %v\n%s", err, out)
	}
}

// TestMutualTLS: with kafka.tls.client_ca the listener accepts only
// clients that present a certificate that CA signed. (The test's one
// self-signed certificate is the server's, the CA and the client's.)
func TestMutualTLS(t *testing.T) {
	certFile, keyFile, pool := writeCert(t, t.TempDir())
	e := start(t, ", tls: {cert: "+certFile+", key: "+keyFile+", client_ca: "+certFile+"}", "")
	ctx := context.Background()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cl := e.client(kgo.DialTLSConfig(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if r, err := cl.ProduceSync(ctx, record(0, "mtls", sample(1, "h"))).First(); err != nil || r.Offset != 0 {
		t.Fatalf("produce with a client certificate: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	anon := e.client(kgo.DialTLSConfig(&tls.Config{RootCAs: pool}), kgo.RequestRetries(0))
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(short, anon); err == nil {
		t.Errorf("a client without a certificate got an answer")
	}
}

// TestCompressedBatches: batches compressed with each codec Kafka knows
// are accepted, and read back intact.
func TestCompressedBatches(t *testing.T) {
	e := start(t, "", "")
	ctx := context.Background()
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
	}{{"gzip", kgo.GzipCompression()}, {"snappy", kgo.SnappyCompression()}, {"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()}}
	for i, c := range codecs {
		cl := e.client(kgo.ProducerBatchCompression(c.codec), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		var recs []*kgo.Record
		for j := range 20 {
			recs = append(recs, record(0, c.name+"-"+string(rune('a'+j)), sample(j, c.name)))
		}
		res := cl.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if res[0].Record.Offset != int64(20*i) {
			t.Errorf("%s: first offset %d, want %d", c.name, res[0].Record.Offset, 20*i)
		}
	}
	cons := e.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"metrics": {0: kgo.NewOffset().AtStart()}}))
	got := consume(t, cons, 80)
	for k, r := range got {
		c := codecs[k/20]
		if want := c.name + "-" + string(rune('a'+k%20)); string(r.Headers[0].Value) != want || r.Offset != int64(k) || string(r.Key) != c.name {
			t.Errorf("offset %d: id %s key %s, want %s", r.Offset, r.Headers[0].Value, r.Key, want)
		}
	}
}
