package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	kmsapi "cloud.google.com/go/kms/apiv1"

	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/devicetype"
	"github.com/sealedsense/sealedsense/shared/registry"
)

// env is what every registry command works with.
type env struct {
	fs        *firestore.Client
	kms       *kmsapi.KeyManagementClient
	deviceKey string
	kekKey    string
	// releaseKey is the release-signing CryptoKey whose enabled versions
	// the devices made are given; only sensors and connector need it.
	releaseKey string
	reg        *registry.Registry
}

func open(ctx context.Context, getenv func(string) string) (*env, error) {
	project, deviceKey, kekKey := getenv("GOOGLE_CLOUD_PROJECT"), getenv("SEALEDSENSE_DEVICE_KEY"), getenv("SEALEDSENSE_SESSION_KEK_KEY")
	var missing []string
	for name, v := range map[string]string{"GOOGLE_CLOUD_PROJECT": project, "SEALEDSENSE_DEVICE_KEY": deviceKey, "SEALEDSENSE_SESSION_KEK_KEY": kekKey} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("set %v", missing)
	}
	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("firestore: %w", err)
	}
	kc, err := custody.NewKMSClient(ctx)
	if err != nil {
		fs.Close()
		return nil, err
	}
	w := custody.NewWrapper(kc, deviceKey)
	return &env{fs: fs, kms: kc, deviceKey: deviceKey, kekKey: kekKey, releaseKey: getenv("SEALEDSENSE_RELEASE_SIGNING_KEY"), reg: registry.New(fs, w, nil)}, nil
}

// releaseKeys are the release-signing public keys a device made now
// trusts: without them it could never install an update.
func (e *env) releaseKeys(ctx context.Context) ([]credentials.ReleaseKey, error) {
	if e.releaseKey == "" {
		return nil, errors.New("set SEALEDSENSE_RELEASE_SIGNING_KEY: every device is made trusting its enabled versions")
	}
	return registry.ReleaseKeys(ctx, e.kms, e.releaseKey)
}

func (e *env) Close() {
	e.fs.Close()
	e.kms.Close()
}

func bootstrap(ctx context.Context, e *env, stdout io.Writer, log *slog.Logger) error {
	ck, err := e.reg.Bootstrap(ctx, custody.NewWrapper(e.kms, e.kekKey), e.deviceKey)
	if err != nil {
		return err
	}
	log.Info("cloud keys ready", "wrapKey", ck.WrapKey, "keks", len(ck.KEKs))
	_, err = fmt.Fprintf(stdout, "cloud static public key: %x\ncloud channel public key: %x\n", ck.StaticPublic(), ck.ChannelPublic())
	return err
}

// productNumber is the catalogue number of a sensor type we make; a
// connector is no sensor.
func productNumber(typ string) (string, bool) {
	t, ok := devicetype.Lookup(typ)
	if !ok || !t.Sensor {
		return "", false
	}
	return t.ProductNumber, true
}

func sensors(ctx context.Context, e *env, args []string, stdout io.Writer, log *slog.Logger) error {
	fl := flag.NewFlagSet("sensors", flag.ContinueOnError)
	n := fl.Int("n", 1, "how many sensors to make")
	typ := fl.String("type", "temperature", "device type: "+strings.Join(devicetype.Sensors(), ", "))
	kitID := fl.String("kit", "", "kit id to add the sensors to (optional)")
	kitName := fl.String("kit-name", "", "display name of a new kit")
	project := fl.String("project", "", "assign the sensors to this customer project (default: unclaimed inventory)")
	out := fl.String("out", "", "directory for the sensors' 0600 secrets files")
	if err := fl.Parse(args); err != nil {
		return err
	}
	product, ok := productNumber(*typ)
	switch {
	case !ok:
		return fmt.Errorf("unknown device type %q", *typ)
	case *n < 1 || *n > 10000:
		return fmt.Errorf("-n must be 1..10000")
	case *out == "":
		return errors.New("-out is required: each sensor's secrets go to a file there")
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return err
	}
	ck, err := e.reg.CloudKeys(ctx)
	if err != nil {
		return fmt.Errorf("run bootstrap first: %w", err)
	}
	releaseKeys, err := e.releaseKeys(ctx)
	if err != nil {
		return err
	}
	spec := registry.Spec{Type: *typ, ProductNumber: product, KitID: *kitID, KitName: *kitName, ProjectID: *project}
	for range *n {
		m, err := e.reg.Manufacture(ctx, spec, e.deviceKey)
		if err != nil {
			return err
		}
		path := filepath.Join(*out, m.Device.ID+".json")
		err = credentials.SaveSensor(path, credentials.Sensor{
			DeviceID:      m.Device.ID,
			DeviceType:    m.Device.Type,
			ProductNumber: m.Device.ProductNumber,
			StaticPrivate: m.Static.Private[:],
			StaticPublic:  m.Static.Public[:],
			PSK:           m.PSK,
			CloudPublic:   ck.StaticPublic(),
			ReleaseKeys:   releaseKeys,
		})
		m.PSK.Clear()
		if err != nil {
			return err
		}
		log.Info("sensor manufactured", "deviceId", m.Device.ID, "type", *typ, "kitId", *kitID)
		if _, err := fmt.Fprintln(stdout, path); err != nil {
			return err
		}
	}
	return nil
}

// connector registers a new connector, or with -rotate gives a registered
// one a new key: its current key keeps working for -grace, so the new
// credentials file can be installed meanwhile.
func connector(ctx context.Context, e *env, args []string, stdout io.Writer, log *slog.Logger) error {
	fl := flag.NewFlagSet("connector", flag.ContinueOnError)
	id := fl.String("id", "", "connector id")
	name := fl.String("name", "", "display name")
	project := fl.String("project", "", "customer project the connector's status events belong to")
	out := fl.String("out", "", "directory for the connector's 0600 secrets file")
	rotate := fl.Bool("rotate", false, "issue a new key for a registered connector instead of registering one")
	grace := fl.Duration("grace", 24*time.Hour, "with -rotate: how long the old key is still accepted")
	if err := fl.Parse(args); err != nil {
		return err
	}
	switch {
	case *id == "" || *out == "":
		return errors.New("-id and -out are required")
	case *grace < 0 || *grace > maxGrace:
		return fmt.Errorf("-grace must be 0..%v", maxGrace)
	case *rotate && (*name != "" || *project != ""):
		return errors.New("-rotate keeps the connector's name and project: drop -name and -project")
	}
	ck, err := e.reg.CloudKeys(ctx)
	if err != nil {
		return fmt.Errorf("run bootstrap first: %w", err)
	}
	releaseKeys, err := e.releaseKeys(ctx)
	if err != nil {
		return err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if *rotate {
		err = e.reg.RotateConnector(ctx, *id, pub, *grace)
	} else {
		err = e.reg.RegisterConnector(ctx, *id, *name, *project, pub)
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return err
	}
	path := filepath.Join(*out, *id+".json")
	if err := credentials.SaveConnector(path, credentials.Connector{ConnectorID: *id, PrivateKey: priv, ChannelPublic: ck.ChannelPublic(), ReleaseKeys: releaseKeys}); err != nil {
		return err
	}
	if *rotate {
		log.Info("connector key rotated", "connectorId", *id, "oldKeyAcceptedUntil", time.Now().Add(*grace).UTC())
	} else {
		log.Info("connector registered", "connectorId", *id)
	}
	_, err = fmt.Fprintln(stdout, path)
	return err
}

// maxGrace bounds a connector rotation's grace period: the old key may be
// why it rotates.
const maxGrace = 30 * 24 * time.Hour

func revokeConnector(ctx context.Context, e *env, args []string, log *slog.Logger) error {
	fl := flag.NewFlagSet("revoke-connector", flag.ContinueOnError)
	id := fl.String("id", "", "connector id")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if err := e.reg.RevokeConnector(ctx, *id); err != nil {
		return err
	}
	log.Info("connector revoked", "connectorId", *id)
	return nil
}

// ensureKMS creates the key ring and keys that Terraform creates in GCP, but
// only against the emulator: in a real project, keys are Terraform's to make.
func ensureKMS(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fl := flag.NewFlagSet("ensure-kms", flag.ContinueOnError)
	ring := fl.String("keyring", "projects/local/locations/europe/keyRings/sealedsense", "key ring name")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if getenv(custody.EmulatorHostEnv) == "" {
		return fmt.Errorf("ensure-kms runs only against the emulator (%s); in GCP, Terraform creates the keys", custody.EmulatorHostEnv)
	}
	c, err := custody.NewKMSClient(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	keys, err := stack.EnsureKMS(ctx, c, *ring)
	if err != nil {
		return err
	}
	for _, kv := range append(keys.Env(), keys.OperatorEnv()...) {
		if _, err := fmt.Fprintln(stdout, "export "+kv); err != nil {
			return err
		}
	}
	return nil
}
