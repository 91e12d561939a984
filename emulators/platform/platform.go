// Package platform starts and stops the local emulators SealedSense runs
// on: the Firestore and Pub/Sub emulators from google-cloud-cli, our KMS
// emulator and fake-gcs-server, the latter behind a gate that checks V4
// signed URLs as Cloud Storage does. The run command and the tests share it.
package platform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/sealedsense/sealedsense/emulators/kms"
)

// Config says where each part listens. An empty address takes the default
// from the local topology; "auto" picks a free port.
type Config struct {
	Firestore, PubSub, KMS, Storage string
	// DataDir holds the emulators' logs and the KMS state file.
	DataDir string
	// Project is the Pub/Sub emulator's default project.
	Project string
	Logger  *slog.Logger
	// ReadyTimeout bounds the wait for each part (default 90s: the Java
	// emulators start in seconds, slower on a loaded 2-core machine).
	ReadyTimeout time.Duration
}

// Defaults of the local topology (DESIGN.md).
const (
	DefaultFirestore = "127.0.0.1:8681"
	DefaultPubSub    = "127.0.0.1:8682"
	DefaultKMS       = "127.0.0.1:8683"
	DefaultStorage   = "127.0.0.1:8684"
)

// Platform is the running set of emulators.
type Platform struct {
	cfg   Config
	log   *slog.Logger
	procs []*process
	kms   *kms.Emulator
	gcs   *fakestorage.Server
	// gcsHTTP serves gcs behind the signed-URL gate; signer is the one
	// identity that gate trusts.
	gcsHTTP *http.Server
	signer  *urlSigner

	FirestoreAddr, PubSubAddr, KMSAddr, StorageAddr string
}

type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// Start starts every part concurrently and waits until each answers.
func Start(ctx context.Context, cfg Config) (*Platform, error) {
	if err := checkTools(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Project == "" {
		cfg.Project = "local"
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 90 * time.Second
	}
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "sealedsense-platform-")
		if err != nil {
			return nil, err
		}
		cfg.DataDir = dir
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	p := &Platform{cfg: cfg, log: cfg.Logger}
	var err error
	for _, a := range []struct {
		dst       *string
		want, def string
	}{
		{&p.FirestoreAddr, cfg.Firestore, DefaultFirestore},
		{&p.PubSubAddr, cfg.PubSub, DefaultPubSub},
		{&p.KMSAddr, cfg.KMS, DefaultKMS},
		{&p.StorageAddr, cfg.Storage, DefaultStorage},
	} {
		if *a.dst, err = resolve(a.want, a.def); err != nil {
			return nil, err
		}
	}

	p.kms, err = kms.Start(ctx, p.KMSAddr, kms.WithStateFile(filepath.Join(cfg.DataDir, "kms-state.json")))
	if err != nil {
		return nil, fmt.Errorf("kms emulator: %w", err)
	}
	if err := p.startGCS(); err != nil {
		p.Close()
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "pubsub"), 0o700); err != nil {
		p.Close()
		return nil, err
	}
	fsArgs := []string{"beta", "emulators", "firestore", "start", "--quiet", "--host-port=" + p.FirestoreAddr}
	psArgs := []string{"beta", "emulators", "pubsub", "start", "--quiet", "--host-port=" + p.PubSubAddr,
		"--project=" + cfg.Project, "--data-dir=" + filepath.Join(cfg.DataDir, "pubsub")}
	for _, s := range []struct {
		name, addr string
		args       []string
	}{
		{"firestore emulator", p.FirestoreAddr, fsArgs},
		{"pubsub emulator", p.PubSubAddr, psArgs},
	} {
		proc, err := p.spawn(s.name, s.args)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.procs = append(p.procs, proc)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(p.procs))
	for i, proc := range p.procs {
		addr := []string{p.FirestoreAddr, p.PubSubAddr}[i]
		wg.Go(func() { errs[i] = p.waitHTTP(ctx, proc, "http://"+addr+"/") })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		p.Close()
		return nil, err
	}
	p.log.Info("local platform ready", "firestore", p.FirestoreAddr, "pubsub", p.PubSubAddr, "kms", p.KMSAddr, "storage", p.StorageAddr)
	return p, nil
}

func checkTools() error {
	if _, err := exec.LookPath("gcloud"); err != nil {
		return errors.New("gcloud is not on PATH: install google-cloud-cli with its Firestore and Pub/Sub emulators")
	}
	if _, err := exec.LookPath("java"); err != nil {
		return errors.New("java is not on PATH: the Firestore and Pub/Sub emulators need Java 17 (apt-get install openjdk-17-jre-headless)")
	}
	return nil
}

func resolve(want, def string) (string, error) {
	switch want {
	case "":
		return def, nil
	case "auto":
		return FreeAddr()
	default:
		return want, nil
	}
}

// FreeAddr returns a loopback address with a port free at the time of the
// call; gcloud's emulators need an explicit port.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startGCS serves fake-gcs-server on the platform's own listener rather
// than fake-gcs-server's, so that signed URLs pass the gate first.
func (p *Platform) startGCS() error {
	signer, err := loadOrCreateURLSigner(p.cfg.DataDir, p.cfg.Project)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", p.StorageAddr)
	if err != nil {
		return fmt.Errorf("storage listener: %w", err)
	}
	p.signer = signer
	p.gcs, p.gcsHTTP, err = serveGCS(l, p.StorageAddr, signer, p.log)
	return err
}

// serveGCS serves a fresh fake-gcs-server on l behind the signed-URL gate.
// publicHost is the Host its XML API paths (/<bucket>/<object>) answer to.
func serveGCS(l net.Listener, publicHost string, signer *urlSigner, log *slog.Logger) (*fakestorage.Server, *http.Server, error) {
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", PublicHost: publicHost, NoListener: true,
	})
	if err != nil {
		l.Close()
		return nil, nil, fmt.Errorf("fake-gcs-server: %w", err)
	}
	srv := &http.Server{Handler: newSignedURLGate(gcs.HTTPHandler(), signer, log), ReadHeaderTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			log.Error("storage server stopped", "err", err)
		}
	}()
	return gcs, srv, nil
}

// spawn runs a gcloud emulator in its own process group, so that Close can
// stop the Java process gcloud starts, not only the wrapper.
func (p *Platform) spawn(name string, args []string) (*process, error) {
	logPath := filepath.Join(p.cfg.DataDir, strings.ReplaceAll(name, " ", "-")+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("gcloud", args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	proc := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(proc.done) }()
	return proc, nil
}

func (p *Platform) waitHTTP(ctx context.Context, proc *process, url string) error {
	deadline := time.Now().Add(p.cfg.ReadyTimeout)
	c := http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-proc.done:
			return fmt.Errorf("%s exited during start: %s", proc.name, tail(proc.log))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v: %s", proc.name, p.cfg.ReadyTimeout, tail(proc.log))
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log)"
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return string(bytes.Join(lines[max(0, len(lines)-8):], []byte("\n")))
}

// Env is the environment that points Google's clients (and ours) at the
// emulators.
func (p *Platform) Env() []string {
	return []string{
		"FIRESTORE_EMULATOR_HOST=" + p.FirestoreAddr,
		"PUBSUB_EMULATOR_HOST=" + p.PubSubAddr,
		"KMS_EMULATOR_HOST=" + p.KMSAddr,
		"STORAGE_EMULATOR_HOST=http://" + p.StorageAddr,
		"GOOGLE_CLOUD_PROJECT=" + p.cfg.Project,
		URLSignerEnv + "=" + p.URLSigner(),
	}
}

// URLSigner is the path of the service-account-style key file that local
// functions sign download URLs with; the storage emulator trusts only it.
func (p *Platform) URLSigner() string { return p.signer.path }

// PointClients sets Env in this process, so that the Google clients it
// makes from now on talk to the emulators.
func (p *Platform) PointClients() {
	for _, kv := range p.Env() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
}

// DataDir is where logs and state live.
func (p *Platform) DataDir() string { return p.cfg.DataDir }

// Close stops everything: SIGTERM to each emulator's process group, SIGKILL
// after a grace period, and waits for them to exit.
func (p *Platform) Close() error {
	for _, proc := range p.procs {
		_ = syscall.Kill(-proc.cmd.Process.Pid, syscall.SIGTERM)
	}
	for _, proc := range p.procs {
		select {
		case <-proc.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-proc.cmd.Process.Pid, syscall.SIGKILL)
			<-proc.done
		}
		// gcloud may exit before its Java child: make sure the group is gone.
		_ = syscall.Kill(-proc.cmd.Process.Pid, syscall.SIGKILL)
	}
	if p.gcsHTTP != nil {
		_ = p.gcsHTTP.Close()
	}
	if p.gcs != nil {
		p.gcs.Stop()
	}
	if p.kms != nil {
		_ = p.kms.Close()
	}
	return nil
}

// KMSCalls is the number of cryptographic KMS operations served so far.
func (p *Platform) KMSCalls() uint64 { return p.kms.CryptoCalls() }
