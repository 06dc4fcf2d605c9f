package benchtool

import (
	"fmt"
	"strings"
)

// HAProxy describes HAProxy in TCP mode as the benchmarks run it: no
// logging, no stats, no health checks, one listen section per route.
type HAProxy struct {
	Threads int    // nbthread
	MaxConn int    // global and per listener; 0: 4096
	Splice  string // "always" (splice-request and splice-response), "auto" (splice-auto) or "off"
	Extra   string // more global lines, separated by ';'
	Routes  []HAProxyRoute
}

// HAProxyRoute is one listen section: a bind address and its servers,
// balanced round robin.
type HAProxyRoute struct {
	Listen  string
	Servers []string
}

// SpliceModes are the values of HAProxy.Splice.
var SpliceModes = []string{"always", "auto", "off"}

// Config renders haproxy.cfg.
func (h HAProxy) Config() string {
	maxconn := h.MaxConn
	if maxconn <= 0 {
		maxconn = 4096
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global\n    nbthread %d\n    maxconn %d\n", h.Threads, maxconn)
	// Pipes are taken only while a splice is in flight; the default,
	// maxconn/4, would make HAProxy reserve more fds than RLIMIT_NOFILE
	// may allow.
	b.WriteString("    maxpipes 256\n")
	for l := range strings.SplitSeq(h.Extra, ";") {
		if l = strings.TrimSpace(l); l != "" {
			b.WriteString("    " + l + "\n")
		}
	}
	b.WriteString("defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1m\n    timeout server 1m\n")
	switch h.Splice {
	case "auto":
		b.WriteString("    option splice-auto\n")
	case "off":
		b.WriteString("    no option splice-auto\n")
	default:
		b.WriteString("    option splice-request\n    option splice-response\n")
	}
	for i, r := range h.Routes {
		fmt.Fprintf(&b, "listen r%d\n    bind %s\n    maxconn %d\n    balance roundrobin\n", i, r.Listen, maxconn)
		for j, s := range r.Servers {
			fmt.Fprintf(&b, "    server s%d %s\n", j, s)
		}
	}
	return b.String()
}

// NginxConfig is the HTTP backend: `return 200` with body as the body, no
// logs, connections kept for as many requests as a run makes, its pid
// file and temporary files in dir, listening on listen (a port, or
// address:port).
func NginxConfig(body, dir, listen string) string {
	return fmt.Sprintf(`daemon off;
worker_processes auto;
pid %[2]s/nginx-%[1]s.pid;
error_log %[2]s/nginx-%[1]s.error.log;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path %[2]s/nginx-%[1]s-body;
    server {
        listen %[3]s backlog=4096;
        location / { return 200 "%[1]s\n"; }
    }
}
`, body, dir, listen)
}
