package lb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// buildChecker builds the check function of cfg.HealthCheck for
// startChecks, loading the CA and client certificate files: at Listen and
// at every Reload (so that certificates rotated in place are picked up).
// An unreadable file is an error there, never checks silently off. The
// caller holds p.reconf.
func (p *Proxy) buildChecker(cfg *Config) error {
	if p.check != nil || cfg.HealthCheck.Type == CheckNone {
		return nil
	}
	check, err := newChecker(cfg.HealthCheck)
	if err != nil {
		return fmt.Errorf("lb: healthCheck: %w", err)
	}
	p.checker = check
	return nil
}

// startChecks starts b's active health checker if the proxy is serving and
// checks are configured. The caller holds p.reconf.
func (p *Proxy) startChecks(b *backend) {
	cfg := p.cfg.Load()
	check := p.check
	if check == nil {
		if cfg.HealthCheck.Type == CheckNone {
			// Without active checks a backend is presumed healthy; dial
			// failures still make it suspect for a while.
			b.mu.Lock()
			b.th.healthy, b.th.run = true, 0
			b.mu.Unlock()
			if !b.healthy.Swap(true) {
				p.cancelDrain(b)
			}
			return
		}
		if check = p.checker; check == nil {
			return // before Listen: Serve starts the checks
		}
	}
	ctx, cancel := context.WithCancel(p.bgCtx)
	b.mu.Lock()
	if b.stopChecks != nil {
		b.stopChecks()
	}
	b.stopChecks = cancel
	b.mu.Unlock()
	hc := cfg.HealthCheck
	p.goBG(func() { p.runChecks(ctx, b, check, time.Duration(hc.Interval), time.Duration(hc.Timeout)) })
}

func (p *Proxy) stopChecks(b *backend) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopChecks != nil {
		b.stopChecks()
		b.stopChecks = nil
	}
}

func (p *Proxy) runChecks(ctx context.Context, b *backend, check func(context.Context, string) error, interval, timeout time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := check(cctx, b.addr)
		cancel()
		if ctx.Err() != nil {
			return
		}
		p.observe(b, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// observe feeds one check result through b's rise/fall thresholds and acts
// on a change: an unhealthy backend is drained, a recovered one taken back.
func (p *Proxy) observe(b *backend, err error) {
	ok := err == nil
	if ok {
		b.checksOK.Add(1)
		if b.suspectSince.Swap(0) != 0 {
			p.log.Info("backend no longer suspect: check passed", "backend", b.addr)
		}
	} else {
		b.checksFailed.Add(1)
	}
	b.mu.Lock()
	changed := b.th.observe(ok)
	healthy := b.th.healthy
	b.mu.Unlock()
	if changed {
		b.healthy.Store(healthy)
		if healthy {
			p.log.Info("backend healthy", "backend", b.addr)
			p.cancelDrain(b)
		} else {
			p.log.Warn("backend unhealthy", "backend", b.addr, "err", err, "active", b.active.Load())
			if b.active.Load() > 0 && !b.removed.Load() {
				p.startDrain(b, "unhealthy")
			}
		}
	}
	p.refreshFailOpen()
	if changed {
		p.changed()
	}
}

// newChecker builds the check function for a HealthCheck configuration.
// Loading certificates is the only I/O; it happens once per build.
func newChecker(hc HealthCheck) (func(context.Context, string) error, error) {
	switch hc.Type {
	case CheckTCP:
		return tcpCheck, nil
	case CheckTLS, CheckHTTPS:
	default:
		return nil, fmt.Errorf("lb: unknown health check type %q", hc.Type)
	}
	base, err := tlsConfig(hc)
	if err != nil {
		return nil, err
	}
	if hc.Type == CheckTLS {
		return func(ctx context.Context, addr string) error {
			d := tls.Dialer{Config: serverName(base, addr)}
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			return c.Close()
		}, nil
	}
	return func(ctx context.Context, addr string) error {
		// A fresh transport per check: no pooled connection can hide a
		// backend that stopped accepting.
		tr := &http.Transport{
			TLSClientConfig:   serverName(base, addr),
			DisableKeepAlives: true,
			Proxy:             nil,
		}
		defer tr.CloseIdleConnections()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+hc.Path, nil)
		if err != nil {
			return err
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", hc.Path, resp.Status)
		}
		return nil
	}, nil
}

func tcpCheck(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// LoadFiles reads the files c names (the health check's CA and client
// certificate) and reports the first that cannot be used, as Listen would.
// Unlike Validate it does I/O; `nlb proxy --check` calls it.
func (c *Config) LoadFiles() error {
	hc := c.HealthCheck
	if hc.Type != CheckTLS && hc.Type != CheckHTTPS {
		return nil
	}
	if _, err := tlsConfig(hc); err != nil {
		return fmt.Errorf("lb: healthCheck: %w", err)
	}
	return nil
}

func tlsConfig(hc HealthCheck) (*tls.Config, error) {
	c := &tls.Config{
		ServerName:         hc.ServerName,
		InsecureSkipVerify: hc.InsecureSkipVerify, //nolint:gosec // opt-in, documented
		MinVersion:         tls.VersionTLS12,
	}
	if hc.CAFile != "" {
		pem, err := os.ReadFile(hc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("caFile %s: no PEM certificates", hc.CAFile)
		}
		c.RootCAs = pool
	}
	if hc.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(hc.CertFile, hc.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("certFile/keyFile: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// serverName returns base with ServerName defaulted to addr's host.
func serverName(base *tls.Config, addr string) *tls.Config {
	c := base.Clone()
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err == nil {
			c.ServerName = host
		}
	}
	return c
}
