package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/sealedsense/sealedsense/functions/api"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/custody"
)

func apiStore(e *env, getenv func(string) string) (*api.Store, error) {
	key := getenv("SEALEDSENSE_API_SECRETS_KEY")
	if key == "" {
		return nil, errors.New("set SEALEDSENSE_API_SECRETS_KEY")
	}
	return api.NewStore(e.fs, custody.NewWrapper(e.kms, key), getenv("SEALEDSENSE_SERVICE_ACCOUNT_DOMAIN")), nil
}

// tenant creates a customer's organization, first project and organization
// admin, and writes the admin's key as a 0600 credentials file that DT's
// clients read.
func tenant(ctx context.Context, e *env, args []string, getenv func(string) string, stdout io.Writer, log *slog.Logger) error {
	fl := flag.NewFlagSet("tenant", flag.ContinueOnError)
	org := fl.String("org", "", "organization display name")
	projectName := fl.String("project-name", "", "first project's display name")
	projectID := fl.String("project", "", "first project's id (default: random); sensors provisioned with -project use it")
	tokenURL := fl.String("token-url", "", "the API's token endpoint, e.g. https://…/api/oauth2/token")
	out := fl.String("out", "", "path of the admin's 0600 credentials file")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *org == "" || *projectName == "" || *tokenURL == "" || *out == "" {
		return errors.New("-org, -project-name, -token-url and -out are required")
	}
	// The key's secret exists only in the file: its folder must be there
	// before the key is made.
	if err := os.MkdirAll(filepath.Dir(*out), 0o700); err != nil {
		return err
	}
	st, err := apiStore(e, getenv)
	if err != nil {
		return err
	}
	t, err := st.Bootstrap(ctx, *org, *projectID, *projectName, *tokenURL)
	if err != nil {
		return err
	}
	if err := credentials.SaveServiceAccount(*out, t.Credentials); err != nil {
		return err
	}
	log.Info("tenant created", "organization", t.Organization, "project", t.Project, "account", t.Account)
	_, err = fmt.Fprintf(stdout, "organization %s\nproject %s\ncredentials %s\n", t.Organization, t.Project, *out)
	return err
}

// personnelDevices is platform personnel's only way to a customer's data:
// it needs a reason, honours the project's setting and leaves an audit
// entry the customer sees.
func personnelDevices(ctx context.Context, e *env, args []string, getenv func(string) string, stdout io.Writer) error {
	fl := flag.NewFlagSet("personnel-devices", flag.ContinueOnError)
	project := fl.String("project", "", "customer project id")
	operator := fl.String("operator", "", "your identity, as the customer will see it in the audit log")
	reason := fl.String("reason", "", "why, as the customer will see it (at least 10 characters)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	st, err := apiStore(e, getenv)
	if err != nil {
		return err
	}
	devs, err := st.PersonnelDevices(ctx, *operator, *project, *reason)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for _, d := range devs {
		if err := enc.Encode(d); err != nil {
			return err
		}
	}
	return nil
}
