package broker

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
)

// These tests connect a Broker to an external nats-server through
// broker.url with the credentials and TLS settings of pipelines.Broker, and
// check that a wrong setting fails Open at once with an error that says
// what is wrong and leaks no secret.

// openBound is how long Open may take to fail. A misconfigured client must
// not retry forever in the background while Open reports success.
const openBound = 10 * time.Second

// extServer starts a standalone nats-server with JetStream on 127.0.0.1,
// changed by mod, and stops it at the end of the test.
func extServer(t *testing.T, mod func(*server.Options)) *server.Server {
	t.Helper()
	o := &server.Options{
		ServerName: "ext",
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
	}
	if mod != nil {
		mod(o)
	}
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { stopServer(ns, slog.New(slog.DiscardHandler)) })
	return ns
}

// hostPort is the server's client address, e.g. 127.0.0.1:4222.
func hostPort(t *testing.T, ns *server.Server) string {
	t.Helper()
	addr, ok := ns.Addr().(*net.TCPAddr)
	if !ok {
		t.Fatalf("server address %v", ns.Addr())
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(addr.Port))
}

// syncBuffer is a bytes.Buffer for a slog handler that nats' callback
// goroutines write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// extCase is one way to connect to an external server.
type extCase struct {
	name   string
	broker func(*pipelines.Broker) // sets URL, credentials and TLS
	// wantErr lists substrings of Open's error, all required; empty means
	// Open must succeed and the log must work.
	wantErr []string
	// is, when set, must match Open's error with errors.Is.
	is error
}

// runExtCases opens a Broker for each case against one server and checks
// that no secret appears in an error or in the log.
func runExtCases(t *testing.T, cases []extCase, secrets ...string) {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testPipeline(t.TempDir(), testTopic("metrics", 1))
			// A prefix per case: each starts with empty partitions.
			p.Broker.Prefix = fmt.Sprintf("T%d", i)
			c.broker(&p.Broker)
			b, err := openWithin(t, p, Options{Logger: logger})
			if len(c.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				roundTrip(t, b)
				b.Close()
				return
			}
			if err == nil {
				b.Close()
				t.Fatalf("Open succeeded, want an error with %q", c.wantErr)
			}
			t.Logf("Open: %v", err)
			for _, want := range c.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Open: %v\nwant it to contain %q", err, want)
				}
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("Open: %v\nwant errors.Is %v", err, c.is)
			}
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("Open's error leaks secret %q: %v", s, err)
				}
			}
		})
	}
	out := logs.String()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("log leaks secret %q:\n%s", s, out)
		}
	}
}

// openWithin opens a Broker and fails the test if Open does not return
// within openBound. A Broker it returns is closed at the end of the test.
func openWithin(t *testing.T, p *pipelines.Pipeline, opts Options) (*Broker, error) {
	t.Helper()
	type result struct {
		b   *Broker
		err error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), openBound)
	defer cancel()
	go func() {
		b, err := Open(ctx, p, opts)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		if r.b != nil {
			t.Cleanup(func() { r.b.Close() })
		}
		return r.b, r.err
	case <-time.After(openBound + time.Second):
		t.Fatalf("Open did not return within %v", openBound)
		return nil, nil
	}
}

// roundTrip creates the topics, appends three events and reads them back.
func roundTrip(t *testing.T, b *Broker) {
	t.Helper()
	if err := b.EnsureTopics(ctxT(t, 20*time.Second)); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	mustAppend(t, b, "metrics", 0, testEvents("x", 0, 3, base), 0)
	if ids := eventIDs(readAll(t, b, "metrics", 0)); !reflect.DeepEqual(ids, []string{"x-0", "x-1", "x-2"}) {
		t.Fatalf("read back %v", ids)
	}
}

func TestExternalUserPassword(t *testing.T) {
	const user, password, wrong = "lambda", "pw-Secret-7f3a9c", "pw-Wrong-0b44e1"
	ns := extServer(t, func(o *server.Options) {
		o.Username = user
		o.Password = password
	})
	hp := hostPort(t, ns)
	url := "nats://" + hp
	runExtCases(t, []extCase{
		{name: "right", broker: func(b *pipelines.Broker) {
			b.URL, b.User, b.Password = url, user, password
		}},
		{name: "right in URL", broker: func(b *pipelines.Broker) {
			b.URL = "nats://" + user + ":" + password + "@" + hp
		}},
		{
			name: "wrong password",
			broker: func(b *pipelines.Broker) {
				b.URL, b.User, b.Password = url, user, wrong
			},
			wantErr: []string{url, "authorization failed"},
			is:      nats.ErrAuthorization,
		},
		{
			name: "wrong password in URL",
			broker: func(b *pipelines.Broker) {
				b.URL = "nats://" + user + ":" + wrong + "@" + hp
			},
			wantErr: []string{"nats://***@" + hp, "authorization failed"},
			is:      nats.ErrAuthorization,
		},
		{
			name:    "none",
			broker:  func(b *pipelines.Broker) { b.URL = url },
			wantErr: []string{url, "authorization failed"},
			is:      nats.ErrAuthorization,
		},
	}, password, wrong)
}

func TestExternalToken(t *testing.T) {
	const token, wrong = "tok-Secret-51d0e8", "tok-Wrong-9a2c77"
	ns := extServer(t, func(o *server.Options) { o.Authorization = token })
	hp := hostPort(t, ns)
	url := "nats://" + hp
	runExtCases(t, []extCase{
		{name: "right", broker: func(b *pipelines.Broker) {
			b.URL, b.Token = url, token
		}},
		{name: "right in URL", broker: func(b *pipelines.Broker) {
			b.URL = "nats://" + token + "@" + hp
		}},
		{
			name: "wrong",
			broker: func(b *pipelines.Broker) {
				b.URL, b.Token = url, wrong
			},
			wantErr: []string{url, "authorization failed"},
			is:      nats.ErrAuthorization,
		},
		{
			name: "wrong in URL",
			broker: func(b *pipelines.Broker) {
				b.URL = "nats://" + wrong + "@" + hp
			},
			wantErr: []string{"nats://***@" + hp, "authorization failed"},
			is:      nats.ErrAuthorization,
		},
		{
			name:    "none",
			broker:  func(b *pipelines.Broker) { b.URL = url },
			wantErr: []string{url, "authorization failed"},
			is:      nats.ErrAuthorization,
		},
	}, token, wrong)
}

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // PEM of cert
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, file: filepath.Join(dir, name+".pem")}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issue writes a certificate for 127.0.0.1 signed by ca and its key, for a
// server or a client, and returns the two files.
func (ca *testCA) issue(t *testing.T, dir, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+"-cert.pem"), filepath.Join(dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

// tlsServer starts a server that requires TLS with a certificate from ca,
// and with verify also a client certificate from ca.
func tlsServer(t *testing.T, ca *testCA, dir string, verify bool) *server.Server {
	t.Helper()
	cert, key := ca.issue(t, dir, "server", x509.ExtKeyUsageServerAuth)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cert, KeyFile: key, CaFile: ca.file, Verify: verify})
	if err != nil {
		t.Fatal(err)
	}
	return extServer(t, func(o *server.Options) {
		o.TLS = true
		o.TLSVerify = verify
		o.TLSConfig = tc
		o.TLSTimeout = 2
	})
}

func TestExternalTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "ca")
	other := newCA(t, dir, "other-ca")
	hp := hostPort(t, tlsServer(t, ca, dir, false))
	runExtCases(t, []extCase{
		{name: "tls URL with CA", broker: func(b *pipelines.Broker) {
			b.URL, b.TLS.CA = "tls://"+hp, ca.file
		}},
		{name: "nats URL with CA", broker: func(b *pipelines.Broker) {
			b.URL, b.TLS.CA = "nats://"+hp, ca.file
		}},
		{
			name:    "without CA",
			broker:  func(b *pipelines.Broker) { b.URL = "tls://" + hp },
			wantErr: []string{"tls://" + hp, "certificate"},
		},
		{
			name: "other CA",
			broker: func(b *pipelines.Broker) {
				b.URL, b.TLS.CA = "tls://"+hp, other.file
			},
			wantErr: []string{"tls://" + hp, "certificate"},
		},
		{
			name: "missing CA file",
			broker: func(b *pipelines.Broker) {
				b.URL, b.TLS.CA = "tls://"+hp, filepath.Join(dir, "nope.pem")
			},
			wantErr: []string{"tls://" + hp, "nope.pem"},
			is:      os.ErrNotExist,
		},
	})
}

func TestExternalMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "ca")
	other := newCA(t, dir, "other-ca")
	cert, key := ca.issue(t, dir, "client", x509.ExtKeyUsageClientAuth)
	otherCert, otherKey := other.issue(t, dir, "other-client", x509.ExtKeyUsageClientAuth)
	hp := hostPort(t, tlsServer(t, ca, dir, true))
	runExtCases(t, []extCase{
		{name: "client certificate", broker: func(b *pipelines.Broker) {
			b.URL, b.TLS.CA, b.TLS.Cert, b.TLS.Key = "tls://"+hp, ca.file, cert, key
		}},
		{
			name: "no client certificate",
			broker: func(b *pipelines.Broker) {
				b.URL, b.TLS.CA = "tls://"+hp, ca.file
			},
			wantErr: []string{"tls://" + hp, "certificate"},
		},
		{
			name: "client certificate of another CA",
			broker: func(b *pipelines.Broker) {
				b.URL, b.TLS.CA, b.TLS.Cert, b.TLS.Key = "tls://"+hp, ca.file, otherCert, otherKey
			},
			wantErr: []string{"tls://" + hp, "certificate"},
		},
	})
}

// TestExternalCreds runs the server in operator mode (JWT accounts in a
// memory resolver) and connects with a credentials file.
func TestExternalCreds(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	operator, err := nkeys.CreateOperator()
	must(err)
	opub, err := operator.PublicKey()
	must(err)
	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "op"
	ojwt, err := oc.Encode(operator)
	must(err)
	oclaims, err := jwt.DecodeOperatorClaims(ojwt)
	must(err)

	account := func(name string, js bool) (nkeys.KeyPair, string, string) {
		t.Helper()
		kp, err := nkeys.CreateAccount()
		must(err)
		pub, err := kp.PublicKey()
		must(err)
		ac := jwt.NewAccountClaims(pub)
		ac.Name = name
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		ajwt, err := ac.Encode(operator)
		must(err)
		return kp, pub, ajwt
	}
	_, syspub, sysjwt := account("SYS", false)
	acct, apub, ajwt := account("APP", true)
	resolver := &server.MemAccResolver{}
	must(resolver.Store(syspub, sysjwt))
	must(resolver.Store(apub, ajwt))

	// creds writes a credentials file for a new user signed by signer.
	creds := func(name string, signer nkeys.KeyPair) (file, seed string) {
		t.Helper()
		user, err := nkeys.CreateUser()
		must(err)
		upub, err := user.PublicKey()
		must(err)
		uc := jwt.NewUserClaims(upub)
		uc.Name = name
		ujwt, err := uc.Encode(signer)
		must(err)
		useed, err := user.Seed()
		must(err)
		conf, err := jwt.FormatUserConfig(ujwt, useed)
		must(err)
		file = filepath.Join(dir, name+".creds")
		must(os.WriteFile(file, conf, 0o600))
		return file, string(useed)
	}
	good, goodSeed := creds("good", acct)
	stranger, _, _ := account("STRANGER", true) // not known to the server
	bad, badSeed := creds("bad", stranger)

	ns := extServer(t, func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{oclaims}
		o.SystemAccount = syspub
		o.AccountResolver = resolver
	})
	url := "nats://" + hostPort(t, ns)
	runExtCases(t, []extCase{
		{name: "right", broker: func(b *pipelines.Broker) {
			b.URL, b.Creds = url, good
		}},
		{
			name: "unknown account",
			broker: func(b *pipelines.Broker) {
				b.URL, b.Creds = url, bad
			},
			wantErr: []string{url, "authorization failed"},
			is:      nats.ErrAuthorization,
		},
		{
			name: "missing file",
			broker: func(b *pipelines.Broker) {
				b.URL, b.Creds = url, filepath.Join(dir, "nope.creds")
			},
			wantErr: []string{url, "nope.creds"},
			is:      os.ErrNotExist,
		},
	}, goodSeed, badSeed)
}

// TestExternalReconnectLog checks that the reconnect message names the
// server without the secrets of its URL: url.URL.Redacted hides a password
// but keeps a token, which is the user part of the URL.
func TestExternalReconnectLog(t *testing.T) {
	const user, password, token = "lambda", "pw-Secret-44d1b0", "tok-Secret-e93a52"
	for _, c := range []struct {
		name, secret string
		mod          func(*server.Options)
		url          func(hp string) string
	}{
		{
			name:   "password",
			secret: password,
			mod:    func(o *server.Options) { o.Username, o.Password = user, password },
			url:    func(hp string) string { return "nats://" + user + ":" + password + "@" + hp },
		},
		{
			name:   "token",
			secret: token,
			mod:    func(o *server.Options) { o.Authorization = token },
			url:    func(hp string) string { return "nats://" + token + "@" + hp },
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			ns := extServer(t, c.mod)
			hp := hostPort(t, ns)
			p := testPipeline(t.TempDir(), testTopic("metrics", 1))
			p.Broker.URL = c.url(hp)
			logs := &syncBuffer{}
			logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			b := openBroker(t, p, Options{Logger: logger})
			id, err := b.nc.GetClientID()
			if err != nil {
				t.Fatal(err)
			}
			if err := ns.DisconnectClientByID(id); err != nil {
				t.Fatal(err)
			}
			testenv.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
				if !strings.Contains(logs.String(), "broker: reconnected") {
					return errors.New("no reconnect in the log")
				}
				return nil
			})
			roundTrip(t, b)
			b.Close()
			out := logs.String()
			if !strings.Contains(out, "nats://***@"+hp) {
				t.Errorf("the log does not name the server as nats://***@%s:\n%s", hp, out)
			}
			if strings.Contains(out, c.secret) {
				t.Errorf("log leaks %q:\n%s", c.secret, out)
			}
		})
	}
}

// TestExternalDownAtOpen checks the other side of failing fast: a cluster
// that is not reachable yet does not fail Open. The Broker reports it
// unavailable and works once the server is up; the connection is logged
// without the password of the URL.
func TestExternalDownAtOpen(t *testing.T) {
	const user, password = "lambda", "pw-Secret-c2e817"
	port := testenv.FreePort(t)
	p := testPipeline(t.TempDir(), testTopic("metrics", 1))
	p.Broker.URL = "nats://" + user + ":" + password + "@127.0.0.1:" + strconv.Itoa(port)
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := openWithin(t, p, Options{Logger: logger})
	if err != nil {
		t.Fatalf("Open with the cluster down: %v", err)
	}
	ctx := ctxT(t, 20*time.Second)
	if err := b.Ready(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ready with the cluster down: %v", err)
	}
	extServer(t, func(o *server.Options) {
		o.Port = port
		o.Username = user
		o.Password = password
	})
	testenv.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error { return b.Ready(ctx) })
	roundTrip(t, b)
	b.Close()
	out := logs.String()
	if !strings.Contains(out, `msg="broker: connected" url=nats://***@127.0.0.1:`+strconv.Itoa(port)) {
		t.Errorf("the connection is not in the log:\n%s", out)
	}
	if strings.Contains(out, password) {
		t.Errorf("log leaks the password:\n%s", out)
	}
}
