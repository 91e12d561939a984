// Command connector runs one Cloud Connector: it listens for simulated radio
// frames on UDP, relays them to Pub/Sub, and transmits its downlinks.
package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/sealedsense/sealedsense/connector"
	"github.com/sealedsense/sealedsense/connector/slots"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/logging"
	"github.com/sealedsense/sealedsense/shared/payload"
)

func main() {
	log := logging.New(os.Stderr, slog.LevelInfo)
	if err := run(log); err != nil {
		log.Error("connector failed", "error", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	creds := flag.String("credentials", "", "the connector's 0600 credentials file from provisioning")
	listen := flag.String("listen", "127.0.0.1:0", "UDP address for radio frames (ignored when a socket is passed in, LISTEN_FDS=1)")
	medium := flag.String("medium", "", "UDP address of the radio medium (the sensor simulator)")
	project := flag.String("project", os.Getenv("GOOGLE_CLOUD_PROJECT"), "GCP project")
	uplinks := flag.String("uplinks", "uplinks", "uplinks topic")
	status := flag.String("status", "connector-status", "status topic")
	sub := flag.String("subscription", "", "this connector's downlinks subscription (default downlinks-<id>)")
	heartbeat := flag.Duration("heartbeat", 30*time.Second, "status interval")
	queueSize := flag.Int("queue", 1024, "bounded queue size, in packets")
	ethernet := flag.String("ethernet-endpoint", "", "plaintext Pub/Sub endpoint (host:port) of the Ethernet link, as a local run's network path; empty: the default endpoint")
	cellular := flag.String("cellular-endpoint", "", "plaintext Pub/Sub endpoint (host:port) of the cellular link; empty: the default endpoint")
	signalStrength := flag.Int("signal-strength", 70, "the cellular signal its status reports, 0..100 (a simulated modem's reading)")
	publishTimeout := flag.Duration("publish-timeout", 5*time.Second, "how long a publish over a link may take before the connector falls back to the other link")
	probeEvery := flag.Duration("probe-every", 3*time.Second, "how often a failed link is tried again with a heartbeat")
	batchWindow := flag.Duration("batch-window", 0, "carry the uplinks heard within this window in one Pub/Sub message (0: one message each)")
	softwareDir := flag.String("software-dir", "", "where the connector keeps its software slots (default: software-<id> beside the credentials)")
	factory := flag.Uint("factory-version", 1, "the software version the connector was made with, run until a release is installed")
	trialBound := flag.Duration("trial-bound", 2*time.Minute, "how long a newly installed release has to get a status through before it is rolled back")
	lie := flag.Bool("hostile-lie", false, "TEST ONLY, refused outside local mode (SEALEDSENSE_LOCAL_MODE=true): claim -30 dBm for every uplink, drop every downlink, and poison every 4th uplink's RSSI (NaN/Inf) and reception time (an hour ahead)")
	flag.Parse()
	var hostile *connector.Hostile
	if *lie {
		if os.Getenv("SEALEDSENSE_LOCAL_MODE") != "true" {
			return errors.New("-hostile-lie is for local tests only: it needs SEALEDSENSE_LOCAL_MODE=true")
		}
		hostile = &connector.Hostile{RSSI: -30, DropDownlinks: true, PoisonEvery: 4}
	}

	c, err := credentials.LoadConnector(*creds)
	if err != nil {
		return err
	}
	mediumAddr, err := net.ResolveUDPAddr("udp", *medium)
	if err != nil {
		return fmt.Errorf("-medium: %w", err)
	}
	radio, err := radioSocket(*listen)
	if err != nil {
		return err
	}
	defer radio.Close()
	if *sub == "" {
		*sub = "downlinks-" + c.ConnectorID
	}
	if *softwareDir == "" {
		*softwareDir = filepath.Join(filepath.Dir(*creds), "software-"+c.ConnectorID)
	}
	sw, err := boot(log, c, *softwareDir, uint32(*factory), *trialBound)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Each link has its own client, so its own connection over its own
	// network path.
	links := map[string]*connector.Link{}
	for name, endpoint := range map[string]string{"ethernet": *ethernet, "cellular": *cellular} {
		ps, err := connector.DialLink(ctx, *project, endpoint)
		if err != nil {
			return fmt.Errorf("%s link: %w", name, err)
		}
		defer ps.Close()
		link, stopLink := connector.PubSubLink(ps, *uplinks, *status, *sub, *publishTimeout)
		defer stopLink()
		links[name] = link
	}

	conn, err := connector.New(connector.Config{
		ID:          c.ConnectorID,
		Key:         ed25519.PrivateKey(c.PrivateKey),
		ChannelKeys: c.Trusted(),
		// What the connector learns about the cloud's channel keys
		// outlives a restart.
		SaveChannelKeys: func(keys []ed25519.PublicKey) error { return credentials.SaveChannelKeys(*creds, keys) },
		Radio:           radio,
		Medium:          mediumAddr,
		Ethernet:        links["ethernet"],
		Cellular:        links["cellular"],
		SignalStrength:  *signalStrength,
		QueueSize:       *queueSize,
		Heartbeat:       *heartbeat,
		PublishTimeout:  *publishTimeout,
		ProbeEvery:      *probeEvery,
		BatchWindow:     *batchWindow,
		Logger:          log,
		Hostile:         hostile,
		AllowHostile:    hostile != nil,
		Software:        sw,
	})
	if err != nil {
		return err
	}
	log.Info("connector listening", "connectorId", c.ConnectorID, "radio", radio.LocalAddr().String(), "softwareVersion", sw.Version)
	err = conn.Run(ctx)
	if errors.Is(err, connector.ErrSwitchOver) {
		// The supervisor restarts the connector, which boots the staged
		// release with the same radio socket.
		log.Info("exiting to switch over to the staged release")
		os.Exit(exitSwitchOver)
	}
	return err
}

// exitSwitchOver is the exit status that asks the supervisor for a
// restart into the staged release (EX_TEMPFAIL).
const exitSwitchOver = 75

// boot decides which software slot runs and wires the connector's updates
// to it. A trial release that fails to boot exits with an error; one that
// gets no status through within bound exits too; either way the next start
// rolls back.
func boot(log *slog.Logger, c credentials.Connector, dir string, factory uint32, bound time.Duration) (connector.Software, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return connector.Software{}, err
	}
	keys, err := credentials.TrustedReleaseKeys(c.ReleaseKeys)
	if err != nil {
		return connector.Software{}, err
	}
	s, err := slots.Open(dir, factory)
	if err != nil {
		return connector.Software{}, err
	}
	st, err := s.Boot()
	if err != nil {
		return connector.Software{}, fmt.Errorf("software version %d: %w", st.Running.Version, err)
	}
	if r := st.Report; r != nil && r.State == payload.UpdateRolledBack && st.Trial == nil {
		log.Warn("rolled back: the release installed last did not come up healthy", "softwareVersion", st.Running.Version, "reason", r.Reason.String())
	}
	sw := connector.Software{Version: st.Running.Version, ReleaseKeys: keys, Report: st.Report, Stage: s.Stage}
	if st.Trial == nil {
		return sw, nil
	}
	log.Info("running a new release on trial", "softwareVersion", st.Running.Version, "trialBound", bound.String())
	confirmed := make(chan struct{})
	sw.Healthy = func() {
		if err := s.Confirm(); err != nil {
			log.Error("confirming the new release failed", "error", err)
			return
		}
		close(confirmed)
		log.Info("new release confirmed healthy", "softwareVersion", st.Running.Version)
	}
	go func() {
		select {
		case <-confirmed:
		case <-time.After(bound):
			log.Error("the new release got no status through in time: exiting to roll back", "softwareVersion", st.Running.Version, "trialBound", bound.String())
			os.Exit(1)
		}
	}()
	return sw, nil
}

// radioSocket takes the UDP socket passed in as file descriptor 3 when the
// supervisor says so (systemd's LISTEN_FDS convention), and listens on addr
// otherwise. A passed-in socket stays bound across restarts, so no other
// process can take the port between them.
func radioSocket(addr string) (net.PacketConn, error) {
	if os.Getenv("LISTEN_FDS") != "1" {
		return net.ListenPacket("udp", addr)
	}
	if pid := os.Getenv("LISTEN_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return net.ListenPacket("udp", addr)
	}
	f := os.NewFile(3, "radio")
	defer f.Close()
	c, err := net.FilePacketConn(f)
	if err != nil {
		return nil, fmt.Errorf("passed-in radio socket: %w", err)
	}
	return c, nil
}
