// Command provision is the operators' tool for the registry: it bootstraps,
// rotates and retires the cloud's keys, "manufactures" sensors and
// registers connectors, and signs software releases. Every
// secret it stores is KMS-wrapped; the secrets a sensor or connector must
// hold are written to 0600 files for that device alone.
//
// Usage:
//
//	provision ensure-kms -keyring projects/P/locations/europe/keyRings/R   (emulator only)
//	provision bootstrap
//	provision sensors -n 20 -type temperature [-kit ID] -out DIR
//	provision connector -id ccon-1 -out DIR
//	provision revoke-connector -id ccon-1
//	provision tenant -org "Acme" -project-name "Acme main" [-project ID] -token-url URL -out FILE
//	provision personnel-devices -project P -operator EMAIL -reason "ticket …"
//	provision connector -rotate -id ccon-1 [-grace 24h] -out DIR
//	provision rewrap [-page 200] [-after CURSOR] [-dry-run]
//	provision backup [-buckets a,b]
//	provision restore -from gs://BUCKET/OBJECT | -from gs://BUCKET [-at RFC3339] [-dry-run]
//	provision rotate -key static|channel|kek
//	provision retire -key static|channel|kek -version N [-force]
//	provision keys
//	provision release -target temperature|…|ccon -version N [-min-from M] -image FILE [-chunk-size B] [-bucket B]
//	provision rollout start -project P -release ID [-stages 1,10,100] [-soak 1h,6h,0s] [-min-devices 10,50,100]
//	provision rollout pause|resume|advance|abort|status -id ID [-reason R]
//
// It reads GOOGLE_CLOUD_PROJECT, SEALEDSENSE_DEVICE_KEY,
// SEALEDSENSE_SESSION_KEK_KEY and, for sensors and connector,
// SEALEDSENSE_RELEASE_SIGNING_KEY (every device is made trusting its
// enabled versions), for tenant SEALEDSENSE_API_SECRETS_KEY,
// for rewrap also SEALEDSENSE_WEBHOOK_SECRETS_KEY, and the usual
// *_EMULATOR_HOST variables. backup and restore read only
// GOOGLE_CLOUD_PROJECT, SEALEDSENSE_BACKUP_KEY and, for backup's default
// buckets, SEALEDSENSE_BACKUP_BUCKETS. release reads only
// GOOGLE_CLOUD_PROJECT, SEALEDSENSE_RELEASE_SIGNING_KEY and, for its
// default bucket, SEALEDSENSE_RELEASES_BUCKET. rollout reads only
// GOOGLE_CLOUD_PROJECT.
//
// release signs a software release for a device type with the newest
// enabled version of release-signing, uploads its image and records it;
// see release.go.
//
// rewrap re-wraps every stored KMS-wrapped secret under its CryptoKey's
// primary version, so that old versions can be disabled afterwards; see
// rewrap.go.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sealedsense/sealedsense/shared/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := logging.New(os.Stderr, slog.LevelInfo)
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, log); err != nil {
		log.Error("provision failed", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: provision ensure-kms|bootstrap|sensors|connector|revoke-connector|tenant|personnel-devices|rotate|retire|keys|rewrap|backup|restore|release|rollout [flags]")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "ensure-kms":
		return ensureKMS(ctx, rest, getenv, stdout)
	case "backup":
		return backupNow(ctx, rest, getenv, stdout, log)
	case "restore":
		return restore(ctx, rest, getenv, stdout, log)
	case "release":
		return releaseCmd(ctx, rest, getenv, stdout, log)
	case "rollout":
		return rolloutCmd(ctx, rest, getenv, stdout, log)
	case "bootstrap", "sensors", "connector", "revoke-connector", "tenant", "personnel-devices", "rewrap", "rotate", "retire", "keys":
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	env, err := open(ctx, getenv)
	if err != nil {
		return err
	}
	defer env.Close()
	switch cmd {
	case "bootstrap":
		return bootstrap(ctx, env, stdout, log)
	case "sensors":
		return sensors(ctx, env, rest, stdout, log)
	case "connector":
		return connector(ctx, env, rest, stdout, log)
	case "tenant":
		return tenant(ctx, env, rest, getenv, stdout, log)
	case "personnel-devices":
		return personnelDevices(ctx, env, rest, getenv, stdout)
	case "rewrap":
		return rewrapCmd(ctx, env, rest, getenv, stdout)
	case "rotate":
		return rotate(ctx, env, rest, stdout, log)
	case "retire":
		return retire(ctx, env, rest, log)
	case "keys":
		return keys(ctx, env, stdout)
	default:
		return revokeConnector(ctx, env, rest, log)
	}
}
