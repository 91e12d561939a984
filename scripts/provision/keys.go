package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/sealedsense/sealedsense/functions/ingest"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/store"
)

// roles are the cloud's versioned keys by the names the commands take.
var roles = map[string]store.KeyRole{"static": store.RoleStatic, "channel": store.RoleChannel, "kek": store.RoleKEK}

// roleOrder is the order keys lists them in.
var roleOrder = []string{"static", "channel", "kek"}

func parseRole(name string) (store.KeyRole, error) {
	r, ok := roles[name]
	if !ok {
		return "", fmt.Errorf("-key %q: want static, channel or kek", name)
	}
	return r, nil
}

// rotate adds a new newest version of one of the cloud's keys. The older
// versions keep working until retired: sensors learn a new static key
// through their replies, connectors a new channel key through their
// status channel, and sessions sealed under an older KEK open until they
// expire.
func rotate(ctx context.Context, e *env, args []string, stdout io.Writer, log *slog.Logger) error {
	fl := flag.NewFlagSet("rotate", flag.ContinueOnError)
	key := fl.String("key", "", "static, channel or kek")
	if err := fl.Parse(args); err != nil {
		return err
	}
	role, err := parseRole(*key)
	if err != nil {
		return err
	}
	k, err := e.reg.RotateCloudKey(ctx, role, custody.NewWrapper(e.kms, e.kekKey))
	if err != nil {
		return err
	}
	log.Info("cloud key rotated", "key", *key, "version", k.Version)
	if len(k.Public) > 0 {
		_, err = fmt.Fprintf(stdout, "%s version %d: public key %x\n", *key, k.Version, k.Public)
	} else {
		_, err = fmt.Fprintf(stdout, "%s version %d\n", *key, k.Version)
	}
	return err
}

// retire removes a version of one of the cloud's keys, which cuts off
// whatever still uses it; without -force it refuses while something may.
func retire(ctx context.Context, e *env, args []string, log *slog.Logger) error {
	fl := flag.NewFlagSet("retire", flag.ContinueOnError)
	key := fl.String("key", "", "static, channel or kek")
	version := fl.Int("version", 0, "the version to retire")
	force := fl.Bool("force", false, "retire even if devices or live sessions may still use the version")
	if err := fl.Parse(args); err != nil {
		return err
	}
	role, err := parseRole(*key)
	if err != nil {
		return err
	}
	if *version <= 0 {
		return errors.New("-version is required")
	}
	ck, err := e.reg.CloudKeys(ctx)
	if err != nil {
		return err
	}
	var users int64
	if role == store.RoleStatic {
		if users, err = store.New(e.fs).DevicesOnStaticKey(ctx, *version); err != nil {
			return err
		}
	}
	if risk := retireRisk(ck, role, *version, users, time.Now()); risk != "" && !*force {
		return fmt.Errorf("not retiring %s version %d: %s (use -force to retire it anyway)", *key, *version, risk)
	} else if risk != "" {
		log.Warn("retiring a key still in use", "key", *key, "version", *version, "risk", risk)
	}
	if err := e.reg.RetireCloudKey(ctx, role, *version); err != nil {
		return err
	}
	log.Info("cloud key retired", "key", *key, "version", *version)
	return nil
}

// retireRisk says what retiring version v of role at now would cut off,
// or "" if nothing known: devices whose last handshake was under a static
// version (users), or sessions that may still be sealed under a KEK
// version. A KEK stops sealing when the next version is added; instances
// learn that within the key refresh, and a session sealed until then
// lives to its age limit.
func retireRisk(ck store.CloudKeys, role store.KeyRole, v int, users int64, now time.Time) string {
	switch role {
	case store.RoleStatic:
		if users > 0 {
			return fmt.Sprintf("%d devices last handshook under it and have not moved to a newer version yet", users)
		}
	case store.RoleKEK:
		vs := ck.Versions(role)
		i := slices.IndexFunc(vs, func(k store.CloudKey) bool { return k.Version == v })
		if i < 0 || i == len(vs)-1 {
			return "" // the store refuses these with a clear error
		}
		if safe := vs[i+1].Created.Add(ingest.OldKEKLifetime()); now.Before(safe) {
			return fmt.Sprintf("sessions sealed under it may be live until %s", safe.UTC().Format(time.RFC3339))
		}
	}
	return ""
}

// keys lists the versions of the cloud's keys, and for each static version
// how many devices last handshook under it.
func keys(ctx context.Context, e *env, stdout io.Writer) error {
	ck, err := e.reg.CloudKeys(ctx)
	if err != nil {
		return err
	}
	db := store.New(e.fs)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVERSION\tCREATED\tDEVICES\t")
	for _, name := range roleOrder {
		vs := ck.Versions(roles[name])
		for i, k := range vs {
			devices := "-"
			if roles[name] == store.RoleStatic {
				n, err := db.DevicesOnStaticKey(ctx, k.Version)
				if err != nil {
					return err
				}
				devices = fmt.Sprint(n)
			}
			newest := ""
			if i == len(vs)-1 {
				newest = "newest"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", name, k.Version, k.Created.UTC().Format(time.RFC3339), devices, newest)
		}
	}
	return tw.Flush()
}
