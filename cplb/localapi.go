package cplb

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/nlb-dev/nlb/lb/k8s"
)

// LocalAPI returns the address of this node's API server for the health
// check: addr (--local-api-server) when given, else the host:port of the
// server of the admin kubeconfig kc (nil: none; path names it in errors),
// else 127.0.0.1:apiPort.
func LocalAPI(addr string, kc *k8s.Kubeconfig, path string, apiPort int) (string, error) {
	target := addr
	if target == "" && kc != nil {
		server, err := kc.Server()
		if err != nil {
			return "", err
		}
		if target, err = k8s.ServerHostPort(server); err != nil {
			return "", fmt.Errorf("kubeconfig %s: %w", path, err)
		}
	}
	if target == "" {
		target = net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort))
	}
	if _, _, err := net.SplitHostPort(target); err != nil {
		return "", fmt.Errorf("--local-api-server %q: %w", target, err)
	}
	return target, nil
}

// DialProbe checks the API server at addr with a TCP connect: the health
// check without a kubeconfig (with one, k8s.APICheck's GET /readyz).
func DialProbe(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}
