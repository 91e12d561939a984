// Package local runs the whole system on one machine: the emulators, a
// provisioned world, the functions server and the connectors as real
// processes, and the simulated sensors. The run command, the end-to-end
// tests and the load tool all use it.
package local

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"cloud.google.com/go/firestore"
	kmsapi "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/storage"

	"github.com/sealedsense/sealedsense/emulators/balancer"
	"github.com/sealedsense/sealedsense/emulators/netpath"
	"github.com/sealedsense/sealedsense/emulators/oidc"
	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/emulators/simulator"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/functions/api"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/devicetype"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/sensor"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Config describes a local deployment.
type Config struct {
	// Platform to run on; nil starts one, closed with the deployment.
	Platform *platform.Platform
	// Project is the GCP project id on the emulators; each project is an
	// isolated Firestore database and Pub/Sub namespace.
	Project string
	// Customer is the customer project the sensors and connectors belong to.
	Customer string
	DataDir  string
	// FunctionsAddr is where the functions server listens (default: a free
	// port; the run command uses the local topology's 127.0.0.1:8690).
	FunctionsAddr string
	// Instances is how many functions-server processes serve (default 1).
	// More than one listen on their own ports behind a balancer on
	// FunctionsAddr, which spreads every request, Pub/Sub's pushes, the
	// API's and the scheduler's, over them as Cloud Run does.
	Instances int

	// Sensors is how many sensors run; SensorTypes are cycled over them
	// (default: every sensor type of shared/devicetype, in its order, so
	// that eleven sensors or more run one of each).
	Sensors     int
	SensorTypes []string
	Connectors  int
	Interval    time.Duration // between a sensor's readings
	Batch       int           // readings a sensor collects before it transmits (default 1)
	Backlog     int           // unacknowledged readings a sensor keeps (default the sensor's, 512)
	Window      time.Duration // ingest's collection window
	Seed        uint64
	// SweepEvery is how often the stand-in for Cloud Scheduler calls Sweep
	// (default 15s); OfflineAfter is passed to ingest.
	SweepEvery, OfflineAfter time.Duration
	// BatchWindow is passed to the connectors (0: one message per uplink).
	BatchWindow time.Duration
	// DeliverSweepEvery is how often the stand-in for Cloud Scheduler
	// runs the webhook retries, backfills and syncs (default 1s; GCP's
	// scheduler runs it each minute).
	DeliverSweepEvery time.Duration
	// FunctionsEnv is more environment for the functions server, e.g. a
	// test receiver's CA (SEALEDSENSE_DELIVER_CA_FILE) or delivery timings.
	FunctionsEnv []string
	// SilentAfter is passed to the sensors (default 2m): how long a
	// session the cloud stopped answering is kept before a new handshake.
	SilentAfter time.Duration
	// TimeScale divides the sample interval a device configuration names,
	// for the simulator's sensors (default 1; see simulator.Config).
	TimeScale float64
	// Liar, for tests only, is a connector id run in the connector's
	// hostile mode (-hostile-lie): it claims -30 dBm, drops its downlinks
	// and poisons some uplinks' metadata.
	Liar   string
	Logger *slog.Logger
}

// Deployment is a running local system.
type Deployment struct {
	cfg      Config
	log      *slog.Logger
	platform *platform.Platform
	ownsPlat bool
	Keys     stack.Keys
	Sim      *simulator.Simulator
	FS       *firestore.Client
	PS       *pubsub.Client

	bin           string
	env           []string
	FunctionsAddr string
	// ReleasesBucket is where provision release uploads images.
	ReleasesBucket string
	// ExportsBucket holds projects' exports.
	ExportsBucket string
	// operatorEnv is what only the operators' command reads besides env.
	operatorEnv []string
	// SignIn is the local OpenID Connect provider people sign in to
	// Studio with, and DemoUser its one user.
	SignIn   *oidc.Provider
	DemoUser oidc.User
	// Visitor can sign in too, but is a member of nothing.
	Visitor oidc.User

	mu sync.Mutex
	// instances are the functions-server processes, by index; addrs
	// where each listens (FunctionsAddr itself when there is one).
	instances  []*exec.Cmd
	addrs      []string
	balancer   *http.Server
	connectors map[string]*connectorProc
	closing    bool // no more restarts

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type connectorProc struct {
	id    string
	creds string
	radio *net.UDPConn // held for the deployment's life and passed to each start
	// paths are its two network paths to Pub/Sub, by link name
	// (relay.ConnectionEthernet, relay.ConnectionCellular); held for the
	// deployment's life, so a cut outlives a restart.
	paths map[string]*netpath.Proxy
	cmd   *exec.Cmd
	exit  chan struct{} // closed when cmd has exited
	// restarts counts the starts the supervisor made after a failed exit.
	restarts int
}

// maxRestarts bounds the supervisor's restarts of one connector: a
// connector that fails this often is broken, not updating.
const maxRestarts = 10

// Start builds the binaries, provisions the world and starts everything.
func Start(ctx context.Context, cfg Config) (*Deployment, error) {
	cfg = cfg.withDefaults()
	if cfg.DataDir == "" {
		return nil, errors.New("local: DataDir is required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	d := &Deployment{cfg: cfg, log: cfg.Logger, platform: cfg.Platform, connectors: map[string]*connectorProc{}, FunctionsAddr: cfg.FunctionsAddr}
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()
	if d.platform == nil {
		p, err := platform.Start(ctx, platform.Config{DataDir: filepath.Join(cfg.DataDir, "emulators"), Project: cfg.Project, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		d.platform, d.ownsPlat = p, true
	}
	d.env = append(os.Environ(), d.platform.Env()...)
	d.env = append(d.env, "GOOGLE_CLOUD_PROJECT="+cfg.Project)
	if err := d.build(ctx); err != nil {
		return nil, err
	}
	// The address comes first: the customer's credentials file names the
	// token endpoint on it.
	if d.FunctionsAddr == "" {
		addr, err := platform.FreeAddr()
		if err != nil {
			return nil, err
		}
		d.FunctionsAddr = addr
	}
	if err := d.startSignIn(); err != nil {
		return nil, err
	}
	if err := d.provision(ctx); err != nil {
		return nil, err
	}
	if err := d.startProcesses(ctx); err != nil {
		return nil, err
	}
	// Sensors come last, once every connector's first heartbeat is in: a
	// device's first reply waits for the copies of the online connectors.
	if err := d.waitOnline(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel
	d.wg.Go(func() { _ = d.Sim.Run(runCtx) })
	d.wg.Go(func() { d.sweep(runCtx) })
	ok = true
	return d, nil
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Project == "" {
		c.Project = "local"
	}
	if c.Customer == "" {
		c.Customer = "demo"
	}
	if len(c.SensorTypes) == 0 {
		c.SensorTypes = devicetype.Sensors()
	}
	if c.SweepEvery <= 0 {
		c.SweepEvery = 15 * time.Second
	}
	if c.DeliverSweepEvery <= 0 {
		c.DeliverSweepEvery = time.Second
	}
	c.Instances = max(c.Instances, 1)
	return c
}

// startProcesses starts the functions server, the Pub/Sub topology that
// pushes to it, and the connectors.
func (d *Deployment) startProcesses(ctx context.Context) error {
	if err := d.StartFunctions(); err != nil {
		return err
	}
	ids := make([]string, 0, d.cfg.Connectors)
	for id := range d.connectors {
		ids = append(ids, id)
	}
	if err := stack.Topology(ctx, d.PS, d.FunctionsAddr, ids); err != nil {
		return err
	}
	for id := range d.connectors {
		if err := d.StartConnector(id); err != nil {
			return err
		}
	}
	return nil
}

func (d *Deployment) waitOnline(ctx context.Context, timeout time.Duration) error {
	db := store.New(d.FS)
	deadline := time.Now().Add(timeout)
	for {
		online, err := db.OnlineConnectors(ctx)
		if err != nil {
			return err
		}
		if len(online) == len(d.connectors) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("local: %d of %d connectors online after %v%s\nfunctions log ends:\n%s",
				len(online), len(d.connectors), timeout, d.offlineReport(online), tail(d.LogPath("functions"), 15))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// offlineReport says, for each connector not online, whether its process is
// still running and how its log ends: a start-up failure must be readable
// from a CI excerpt.
func (d *Deployment) offlineReport(online map[string]store.Connector) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	for id, c := range d.connectors {
		if _, ok := online[id]; ok {
			continue
		}
		state := "running"
		select {
		case <-c.exit:
			state = "exited"
			if c.cmd != nil {
				state += ": " + c.cmd.ProcessState.String()
			}
		default:
		}
		fmt.Fprintf(&b, "\nconnector %s (%s), log ends:\n%s", id, state, tail(d.LogPath(id), 10))
	}
	return b.String()
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// tenant makes the customer the sensors belong to, with an organization
// admin whose key is written where DT's clients can read it.
func (d *Deployment) tenant(ctx context.Context, kc custody.KMS) error {
	st := api.NewStore(d.FS, custody.NewWrapper(kc, d.Keys.APISecrets), "")
	t, err := st.Bootstrap(ctx, "Demo", d.cfg.Customer, "Demo", "http://"+d.FunctionsAddr+"/oauth2/token")
	if err != nil {
		return fmt.Errorf("local: tenant: %w", err)
	}
	// The demo person administers the organization, as a customer's
	// first person does once an operator has added them.
	if err := st.GrantPerson(ctx, t.Organization, d.DemoUser.Email); err != nil {
		return fmt.Errorf("local: tenant: %w", err)
	}
	return credentials.SaveServiceAccount(d.APICredentials(), t.Credentials)
}

// APICredentials is the path of the customer's organization admin key, a
// credentials file as DT's clients read it.
func (d *Deployment) APICredentials() string {
	return filepath.Join(d.cfg.DataDir, "credentials", "api-admin.json")
}

// pointClients points this process's Google clients (and our KMS client)
// at the platform, as the functions' environment does for theirs.
func (d *Deployment) build(ctx context.Context) error {
	d.bin = filepath.Join(d.cfg.DataDir, "bin")
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", d.bin+"/", "./functions/cmd/localserver", "./connector/cmd/connector", "./scripts/provision")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("local: build: %v\n%s", err, out)
	}
	return nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
		return "", errors.New("local: run from inside the sealedsense module")
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// provision makes the KMS keys, the cloud's keys, the sensors and the
// connectors, and places them on the plane.
func (d *Deployment) provision(ctx context.Context) error {
	d.platform.PointClients()
	kc, err := custody.NewKMSClient(ctx)
	if err != nil {
		return err
	}
	defer kc.Close()
	d.Keys, err = stack.EnsureKMS(ctx, kc, "projects/"+d.cfg.Project+"/locations/europe/keyRings/sealedsense")
	if err != nil {
		return err
	}
	d.env = append(d.env, d.Keys.Env()...)
	// Local mode lets webhooks reach receivers on this machine.
	d.env = append(d.env, "SEALEDSENSE_LOCAL_MODE=true")
	// The Firestore emulator makes a commit visible after its server
	// timestamp; on a loaded machine that took longer than the stream's
	// 500 ms settle lag, and the stream passed events it had not yet
	// seen. Firestore itself does not (a read sees every commit with an
	// earlier timestamp).
	d.env = append(d.env, "SEALEDSENSE_STREAM_SETTLE_AFTER=2s")
	d.env = append(d.env, d.cfg.FunctionsEnv...)
	if d.cfg.Window > 0 {
		d.env = append(d.env, "SEALEDSENSE_INGEST_WINDOW="+d.cfg.Window.String())
	}
	if d.cfg.OfflineAfter > 0 {
		d.env = append(d.env, "SEALEDSENSE_CONNECTOR_OFFLINE_AFTER="+d.cfg.OfflineAfter.String())
	}
	if d.FS, err = firestore.NewClient(ctx, d.cfg.Project); err != nil {
		return err
	}
	if d.PS, err = pubsub.NewClient(ctx, d.cfg.Project); err != nil {
		return err
	}
	deviceKeys := custody.NewWrapper(kc, d.Keys.Device)
	reg := registry.New(d.FS, deviceKeys, nil)
	ck, err := reg.Bootstrap(ctx, custody.NewWrapper(kc, d.Keys.SessionKEK), d.Keys.Device)
	if err != nil {
		return err
	}
	releaseKeys, err := d.releases(ctx, kc)
	if err != nil {
		return err
	}

	credDir := filepath.Join(d.cfg.DataDir, "credentials")
	if err := os.MkdirAll(credDir, 0o700); err != nil {
		return err
	}
	if err := d.tenant(ctx, kc); err != nil {
		return err
	}

	conns, err := d.registerConnectors(ctx, reg, credDir, ck.ChannelPublic(), releaseKeys)
	if err != nil {
		return err
	}
	sensors, err := d.manufactureSensors(ctx, reg, ck.StaticPublic(), releaseKeys)
	if err != nil {
		return err
	}
	d.Sim, err = simulator.New(simulator.Config{Sensors: sensors, Connectors: conns, Interval: d.cfg.Interval, TimeScale: d.cfg.TimeScale, Seed: d.cfg.Seed, Logger: d.log,
		Sensor: sensor.Config{Batch: d.cfg.Batch, MaxBacklog: d.cfg.Backlog, SilentAfter: d.cfg.SilentAfter}})
	return err
}

// releases makes the releases bucket, gives the operators' command the
// release-signing key and the bucket, and returns the release keys every
// device is made trusting, as provisioning does in GCP.
func (d *Deployment) releases(ctx context.Context, kc *kmsapi.KeyManagementClient) ([]credentials.ReleaseKey, error) {
	keys, err := registry.ReleaseKeys(ctx, kc, d.Keys.ReleaseSigning)
	if err != nil {
		return nil, err
	}
	gcs, err := storage.NewClient(ctx)
	if err != nil {
		return nil, err
	}
	defer gcs.Close()
	d.ReleasesBucket = stack.ReleasesBucket(d.cfg.Project)
	if err := stack.EnsureBucket(ctx, gcs, d.cfg.Project, d.ReleasesBucket); err != nil {
		return nil, err
	}
	// Projects' exports; in GCP Terraform makes the bucket.
	d.ExportsBucket = stack.ExportsBucket(d.cfg.Project)
	if err := stack.EnsureBucket(ctx, gcs, d.cfg.Project, d.ExportsBucket); err != nil {
		return nil, err
	}
	d.env = append(d.env, "SEALEDSENSE_EXPORT_BUCKET="+d.ExportsBucket)
	d.operatorEnv = append(d.Keys.OperatorEnv(), "SEALEDSENSE_RELEASES_BUCKET="+d.ReleasesBucket)
	return keys, nil
}

// registerConnectors registers the connectors, saves their credentials
// and binds their radio sockets. Connectors stand on a circle of 150 m;
// sensors are scattered around them, so every sensor hears several
// connectors, best the nearest.
func (d *Deployment) registerConnectors(ctx context.Context, reg *registry.Registry, credDir string, channelPublic []byte, releaseKeys []credentials.ReleaseKey) ([]simulator.Connector, error) {
	var conns []simulator.Connector
	for i := range d.cfg.Connectors {
		id := fmt.Sprintf("ccon-%d", i+1)
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if err := reg.RegisterConnector(ctx, id, "Connector "+fmt.Sprint(i+1), d.cfg.Customer, pub); err != nil && !errors.Is(err, registry.ErrExists) {
			return nil, err
		} else if errors.Is(err, registry.ErrExists) {
			return nil, fmt.Errorf("local: connector %s exists in project %s: use a fresh project", id, d.cfg.Project)
		}
		path := filepath.Join(credDir, id+".json")
		if err := credentials.SaveConnector(path, credentials.Connector{ConnectorID: id, PrivateKey: priv, ChannelPublic: channelPublic, ReleaseKeys: releaseKeys}); err != nil {
			return nil, err
		}
		// The deployment binds the radio socket and hands it to every
		// start of the connector process: a port picked, closed and bound
		// again later could be taken by a parallel test in between.
		radio, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		addr := radio.LocalAddr().(*net.UDPAddr)
		angle := 2 * math.Pi * float64(i) / float64(max(d.cfg.Connectors, 1))
		at := simulator.Point{X: 150 * math.Cos(angle), Y: 150 * math.Sin(angle)}
		conns = append(conns, simulator.Connector{ID: id, At: at, Addr: addr})
		c := &connectorProc{id: id, creds: path, radio: radio, paths: map[string]*netpath.Proxy{}}
		d.connectors[id] = c
		for _, link := range []string{relay.ConnectionEthernet, relay.ConnectionCellular} {
			p, err := netpath.Listen(d.platform.PubSubAddr)
			if err != nil {
				return nil, err
			}
			c.paths[link] = p
		}
	}
	return conns, nil
}

// manufactureSensors makes the sensors, scattered at random around the
// connectors.
func (d *Deployment) manufactureSensors(ctx context.Context, reg *registry.Registry, cloudPublic []byte, releaseKeys []credentials.ReleaseKey) ([]simulator.Sensor, error) {
	rng := mrand.New(mrand.NewPCG(d.cfg.Seed, 3))
	var sensors []simulator.Sensor
	for i := range d.cfg.Sensors {
		typ := d.cfg.SensorTypes[i%len(d.cfg.SensorTypes)]
		t, ok := devicetype.Lookup(typ)
		if !ok || !t.Sensor {
			return nil, fmt.Errorf("local: %q is no sensor type", typ)
		}
		m, err := reg.Manufacture(ctx, registry.Spec{Type: typ, ProductNumber: t.ProductNumber, ProjectID: d.cfg.Customer}, d.Keys.Device)
		if err != nil {
			return nil, err
		}
		sensors = append(sensors, simulator.Sensor{
			Credentials: credentials.Sensor{DeviceID: m.Device.ID, DeviceType: typ, StaticPrivate: m.Static.Private[:],
				StaticPublic: m.Static.Public[:], PSK: m.PSK, CloudPublic: cloudPublic, ReleaseKeys: releaseKeys},
			At: simulator.Point{X: rng.Float64()*400 - 200, Y: rng.Float64()*400 - 200},
		})
	}
	return sensors, nil
}

func (d *Deployment) logFile(name string) (*os.File, error) {
	return os.OpenFile(filepath.Join(d.cfg.DataDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
}

// LogPath is where a process's structured log goes ("functions", or a
// connector id).
func (d *Deployment) LogPath(name string) string { return filepath.Join(d.cfg.DataDir, name+".log") }

// StartFunctions (re)starts every functions-server instance, and the
// balancer in front of them when there are several.
func (d *Deployment) StartFunctions() error {
	if err := d.listen(); err != nil {
		return err
	}
	for i := range d.addrs {
		if err := d.StartInstance(i); err != nil {
			return err
		}
	}
	return nil
}

// listen picks each instance's address and starts the balancer, once.
func (d *Deployment) listen() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.addrs != nil {
		return nil
	}
	if d.cfg.Instances == 1 {
		d.addrs, d.instances = []string{d.FunctionsAddr}, make([]*exec.Cmd, 1)
		return nil
	}
	addrs := make([]string, d.cfg.Instances)
	for i := range addrs {
		a, err := platform.FreeAddr()
		if err != nil {
			return err
		}
		addrs[i] = a
	}
	l, err := net.Listen("tcp", d.FunctionsAddr)
	if err != nil {
		return fmt.Errorf("local: balancer: %w", err)
	}
	d.balancer = &http.Server{Handler: balancer.New(addrs), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = d.balancer.Serve(l) }()
	d.addrs, d.instances = addrs, make([]*exec.Cmd, len(addrs))
	return nil
}

// Instances is how many functions-server instances serve.
func (d *Deployment) Instances() int { return d.cfg.Instances }

// StartInstance (re)starts functions-server instance i. Every instance
// logs to the one functions log, as Cloud Logging gathers a service's.
func (d *Deployment) StartInstance(i int) error {
	addr := d.addrs[i]
	_, port, _ := net.SplitHostPort(addr)
	f, err := d.logFile("functions")
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(d.bin, "localserver"))
	cmd.Env = append(append([]string{}, d.env...), "PORT="+port, "SEALEDSENSE_API_BASE_URL=http://"+d.FunctionsAddr)
	if err := spawn(cmd, f, nil); err != nil {
		return err
	}
	d.mu.Lock()
	d.instances[i] = cmd
	d.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("local: functions server did not start; see " + d.LogPath("functions"))
}

// Provision runs the operators' provisioning command against this
// deployment, with the environment the functions get and the release key
// and bucket, and returns what it printed; a failure returns its log too.
func (d *Deployment) Provision(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "provision"), args...)
	cmd.Env = append(append([]string{}, d.env...), d.operatorEnv...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("provision %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// spawn starts cmd in its own process group, logging to log, and reaps it;
// exit, if not nil, is closed when the process has exited.
func spawn(cmd *exec.Cmd, log *os.File, exit chan struct{}) error {
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	go func() {
		_ = cmd.Wait()
		log.Close()
		if exit != nil {
			close(exit)
		}
	}()
	return nil
}

// KillFunctions kills every functions-server instance abruptly, as a
// crash would.
func (d *Deployment) KillFunctions() {
	for i := range d.addrs {
		d.KillInstance(i)
	}
}

// KillInstance kills functions-server instance i abruptly; the balancer
// sends its requests to the others until it is started again.
func (d *Deployment) KillInstance(i int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	kill(d.instances[i])
	d.instances[i] = nil
}

func kill(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	for i := 0; i < 100 && syscall.Kill(cmd.Process.Pid, 0) == nil; i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

// StartConnector starts a connector process.
func (d *Deployment) StartConnector(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.connectors[id]
	if !ok {
		return fmt.Errorf("local: no connector %s", id)
	}
	if c.exit != nil {
		// Two processes would read the one radio socket, each taking some
		// frames. A killed one is given a moment to be reaped.
		select {
		case <-c.exit:
		case <-time.After(5 * time.Second):
			return fmt.Errorf("local: connector %s is still running", id)
		}
	}
	f, err := d.logFile(id)
	if err != nil {
		return err
	}
	sock, err := c.radio.File()
	if err != nil {
		f.Close()
		return err
	}
	defer sock.Close()
	cmd := exec.Command(filepath.Join(d.bin, "connector"),
		"-credentials", c.creds, "-medium", d.Sim.Addr().String(),
		"-project", d.cfg.Project, "-subscription", stack.DownlinkSubscription(id), "-heartbeat", "5s",
		"-batch-window", d.cfg.BatchWindow.String(),
		"-ethernet-endpoint", c.paths[relay.ConnectionEthernet].Addr(), "-cellular-endpoint", c.paths[relay.ConnectionCellular].Addr())
	if id == d.cfg.Liar {
		cmd.Args = append(cmd.Args, "-hostile-lie")
	}
	cmd.Env = append(append([]string{}, d.env...), "LISTEN_FDS=1")
	cmd.ExtraFiles = []*os.File{sock}
	exit := make(chan struct{})
	if err := spawn(cmd, f, exit); err != nil {
		return err
	}
	c.cmd, c.exit = cmd, exit
	go d.supervise(c, cmd, exit)
	return nil
}

// supervise restarts a connector process that exits with an error status,
// as systemd's Restart=on-failure does on the hardware: that is how a
// connector switches over to a staged release (status 75) and how a
// release that fails to boot gets rolled back. A process killed or
// stopped by the deployment stays down.
func (d *Deployment) supervise(c *connectorProc, cmd *exec.Cmd, exit chan struct{}) {
	<-exit
	code := cmd.ProcessState.ExitCode() // -1 when a signal ended it
	d.mu.Lock()
	restart := c.cmd == cmd && !d.closing && code > 0 && c.restarts < maxRestarts
	if restart {
		c.restarts++
	}
	d.mu.Unlock()
	if !restart {
		return
	}
	time.Sleep(100 * time.Millisecond)
	if err := d.StartConnector(c.id); err != nil {
		d.log.Error("restarting a connector failed", "connectorId", c.id, "exitCode", code, "error", err.Error())
		return
	}
	d.log.Info("connector restarted by its supervisor", "connectorId", c.id, "exitCode", code)
}

// KillConnector kills a connector abruptly.
func (d *Deployment) KillConnector(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.connectors[id]; ok {
		kill(c.cmd)
		c.cmd = nil
	}
}

// CutLink cuts one of a connector's network paths to Pub/Sub, link being
// relay.ConnectionEthernet or relay.ConnectionCellular: its open
// connections are reset and new ones refused until RestoreLink.
func (d *Deployment) CutLink(connectorID, link string) error {
	p, err := d.path(connectorID, link)
	if err != nil {
		return err
	}
	p.Cut()
	return nil
}

// RestoreLink mends a path CutLink cut.
func (d *Deployment) RestoreLink(connectorID, link string) error {
	p, err := d.path(connectorID, link)
	if err != nil {
		return err
	}
	p.Restore()
	return nil
}

func (d *Deployment) path(connectorID, link string) (*netpath.Proxy, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.connectors[connectorID]
	if !ok {
		return nil, fmt.Errorf("local: no connector %s", connectorID)
	}
	p, ok := c.paths[link]
	if !ok {
		return nil, fmt.Errorf("local: connector %s has no %q link", connectorID, link)
	}
	return p, nil
}

// StopConnector stops a connector gracefully (SIGTERM), as an operator would.
func (d *Deployment) StopConnector(id string) {
	d.mu.Lock()
	c, ok := d.connectors[id]
	d.mu.Unlock()
	if !ok || c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	for i := 0; i < 300 && syscall.Kill(c.cmd.Process.Pid, 0) == nil; i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

// sweep stands in for Cloud Scheduler, calling the Sweep, DeliverSweep
// and DataRights functions (the last as often as DeliverSweep: in GCP
// every minute).
func (d *Deployment) sweep(ctx context.Context) {
	offline := time.NewTicker(d.cfg.SweepEvery)
	defer offline.Stop()
	deliveries := time.NewTicker(d.cfg.DeliverSweepEvery)
	defer deliveries.Stop()
	call := func(path string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+d.FunctionsAddr+path, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	// A data-rights call works until no job is left, so it has its own
	// loop: the sweeps above keep their pace meanwhile.
	done := make(chan struct{})
	defer func() { <-done }()
	go func() {
		defer close(done)
		for {
			call("/DataRights")
			select {
			case <-ctx.Done():
				return
			case <-time.After(d.cfg.DeliverSweepEvery):
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-offline.C:
			call("/Sweep")
		case <-deliveries.C:
			call("/DeliverSweep")
		}
	}
}

// StopTraffic stops the sensors, the connectors and the functions server,
// leaving the emulators running.
func (d *Deployment) StopTraffic() {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	for id := range d.connectors {
		d.KillConnector(id)
	}
	d.KillFunctions()
}

// studioClientID is Studio's client at the sign-in provider.
const studioClientID = "studio"

// startSignIn starts the sign-in provider with a demo person whose
// password is new each run: local, but still not a known one.
func (d *Deployment) startSignIn() error {
	password, err := registry.NewID()
	if err != nil {
		return err
	}
	secret, err := registry.NewID()
	if err != nil {
		return err
	}
	visitor, err := registry.NewID()
	if err != nil {
		return err
	}
	d.DemoUser = oidc.User{Email: "facility@demo.example", Password: password, Name: "Demo facility manager"}
	d.Visitor = oidc.User{Email: "visitor@elsewhere.example", Password: visitor, Name: "Visitor"}
	d.SignIn, err = oidc.Start(oidc.Config{Addr: "127.0.0.1:0", ClientID: studioClientID, ClientSecret: secret,
		RedirectURIs: []string{d.StudioURL() + "/callback"}, Users: []oidc.User{d.DemoUser, d.Visitor}})
	if err != nil {
		return err
	}
	d.env = append(d.env, "SEALEDSENSE_STUDIO_URL="+d.StudioURL(), "SEALEDSENSE_STUDIO_ISSUER="+d.SignIn.Issuer,
		"SEALEDSENSE_STUDIO_CLIENT_ID="+studioClientID, "SEALEDSENSE_STUDIO_CLIENT_SECRET="+secret)
	return nil
}

// StudioURL is where Studio answers.
func (d *Deployment) StudioURL() string { return "http://" + d.FunctionsAddr + "/studio" }

// Close stops the sensors, the processes and, if it started it, the
// platform.
func (d *Deployment) Close() {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	d.mu.Lock()
	d.closing = true
	for _, c := range d.connectors {
		if c.cmd != nil {
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	d.mu.Unlock()
	for id := range d.connectors {
		d.StopConnector(id)
		d.KillConnector(id)
	}
	d.KillFunctions()
	if d.balancer != nil {
		_ = d.balancer.Close()
	}
	if d.SignIn != nil {
		_ = d.SignIn.Close()
	}
	for _, c := range d.connectors {
		c.radio.Close()
		for _, p := range c.paths {
			_ = p.Close()
		}
	}
	if d.FS != nil {
		d.FS.Close()
	}
	if d.PS != nil {
		d.PS.Close()
	}
	if d.ownsPlat {
		_ = d.platform.Close()
	}
}

// Devices lists the simulated sensors' ids.
func (d *Deployment) Devices() []string { return d.Sim.Devices() }

// DataDir is where logs and credentials are.
func (d *Deployment) DataDir() string { return d.cfg.DataDir }

// Platform is the emulators the deployment runs on.
func (d *Deployment) Platform() *platform.Platform { return d.platform }

// Customer is the customer project the sensors and connectors belong to.
func (d *Deployment) Customer() string { return d.cfg.Customer }
