package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/fleet"
	"github.com/vifsec/vifsec/internal/store/etcd"
	"github.com/vifsec/vifsec/tenant"
)

// fleetOptions are the flags of a fleet host (ext):
//
//	--store etcd://HOST:PORT[,HOST:PORT...]/PREFIX --host-id NAME --kek-file PATH
//	[--etcd-cacert PATH] [--etcd-cert PATH --etcd-key PATH]
//	[--etcd-user NAME --etcd-password-file PATH]
//
// Without --store (or with --store bolt) the embedded store in --state is
// used, as before. With etcd, --state still holds the host's lock; the
// SAs' sequence reservations are in etcd.
type fleetOptions struct {
	store, hostID, kekFile                string
	cacert, cert, key, user, passwordFile string
}

func addFleetFlags(fs *flag.FlagSet, o *fleetOptions) {
	fs.StringVar(&o.store, "store", "", "desired state: empty or bolt for the embedded store in --state, or etcd://HOST:PORT[,HOST:PORT...]/PREFIX for a fleet (ext)")
	fs.StringVar(&o.hostID, "host-id", "", "this host's name in the fleet (default: the short hostname) (ext)")
	fs.StringVar(&o.kekFile, "kek-file", "", "key-encryption key file sealing SA keys and PSKs in etcd: 64 hex digits per line, current first (ext)")
	fs.StringVar(&o.cacert, "etcd-cacert", "", "CA certificate (PEM) that verifies the etcd members; turns on TLS (ext)")
	fs.StringVar(&o.cert, "etcd-cert", "", "client certificate (PEM) for etcd; with --etcd-key (ext)")
	fs.StringVar(&o.key, "etcd-key", "", "client certificate's key (PEM) for etcd (ext)")
	fs.StringVar(&o.user, "etcd-user", "", "etcd user, with --etcd-password-file (ext)")
	fs.StringVar(&o.passwordFile, "etcd-password-file", "", "file whose first line is the etcd user's password (ext)")
}

const fleetUsage = "[--store bolt|etcd://HOST:PORT[,HOST:PORT...]/PREFIX --host-id NAME --kek-file PATH [--etcd-cacert PATH] [--etcd-cert PATH --etcd-key PATH] [--etcd-user NAME --etcd-password-file PATH]]"

func (o *fleetOptions) enabled() bool { return o.store != "" && o.store != "bolt" }

// check validates the fleet flags; it fills --host-id's default.
func (o *fleetOptions) check() error {
	if !o.enabled() {
		for flag, v := range map[string]string{"--host-id": o.hostID, "--kek-file": o.kekFile, "--etcd-cacert": o.cacert,
			"--etcd-cert": o.cert, "--etcd-key": o.key, "--etcd-user": o.user, "--etcd-password-file": o.passwordFile} {
			if v != "" {
				return fmt.Errorf("%s is only used with --store etcd://HOST:PORT/PREFIX", flag)
			}
		}
		return nil
	}
	if _, _, err := etcd.ParseURL(o.store); err != nil {
		return err
	}
	if o.hostID == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("--host-id: not given, and the hostname is unknown: %v", err)
		}
		o.hostID, _, _ = strings.Cut(h, ".")
	}
	if err := tenant.ValidName(o.hostID); err != nil {
		return fmt.Errorf("--host-id: %w", err)
	}
	if o.kekFile == "" {
		return errors.New("--kek-file is required with --store etcd://...: SA keys and PSKs are stored sealed with it, so that read access to etcd reveals no key")
	}
	if (o.user == "") != (o.passwordFile == "") {
		return errors.New("--etcd-user and --etcd-password-file go together")
	}
	return nil
}

// fleetHost is a running fleet host's store and runtime.
type fleetHost struct {
	cluster *etcd.Cluster
	f       *fleet.Fleet
}

// openFleet connects to etcd and builds the host's daemon from it.
func openFleet(ctx context.Context, o *options, log *slog.Logger) (*fleetHost, error) {
	fo := &o.fleet
	endpoints, prefix, err := etcd.ParseURL(fo.store)
	if err != nil {
		return nil, err
	}
	kr, err := etcd.LoadKEKFile(fo.kekFile)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := etcd.TLSConfig(fo.cacert, fo.cert, fo.key)
	if err != nil {
		return nil, err
	}
	var password string
	if fo.passwordFile != "" {
		b, err := os.ReadFile(fo.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--etcd-password-file: %w", err)
		}
		password, _, _ = strings.Cut(string(b), "\n")
	}
	c, err := etcd.Open(etcd.Options{Endpoints: endpoints, Prefix: prefix, TLS: tlsCfg, Username: fo.user, Password: password,
		Keyring: kr, Logger: log.With("part", "store")})
	if err != nil {
		return nil, err
	}
	f, err := fleet.Open(ctx, fleet.Config{Cluster: c, Host: fo.hostID, StateDir: o.state, Version: version,
		Logger: log, Daemon: &daemon.Config{SeqAnchor: seqAnchor(o.socket, "etcd:"+prefix+"/"+fo.hostID)}})
	if err != nil {
		c.Close()
		return nil, err
	}
	log.Info("fleet store", "etcd", strings.Join(endpoints, ","), "prefix", prefix, "host", fo.hostID, "kek_id", kr.CurrentID(),
		"tls", tlsCfg != nil, "auth", fo.user != "")
	return &fleetHost{cluster: c, f: f}, nil
}

func (h *fleetHost) close() { h.cluster.Close() }
