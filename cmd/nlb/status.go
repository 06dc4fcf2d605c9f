package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/nlb-dev/nlb/cplb"
	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/nllb"
)

const statusUsage = `Usage: nlb status [--admin ADDRESS] [--json]

Prints a readable summary of a running nlb from its admin endpoint's
/status: VRRP instances with state, priority and the VIP holder; the health
that the VIP follows; the steering mode; proxy backends with health and
connections; recent transitions. Works with nlb controller (the default
address), nlb vrrp, nlb proxy and nlb client.

Flags:
`

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", statusUsage, stdout)
	admin := fs.String("admin", defaultControllerAdmin, "admin `address` of the nlb to ask (host:port, or an http:// URL)")
	raw := fs.Bool("json", false, "print the JSON as served")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this `duration`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	url := *admin
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	url = strings.TrimSuffix(url, "/") + "/status"
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("status: is nlb running with --admin %s? %w", *admin, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("status: %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status: %s: %s", url, printable(resp.Status))
	}
	if *raw {
		if !json.Valid(body) {
			return fmt.Errorf("status: %s: not JSON", url)
		}
		_, err := stdout.Write(escapeJSON(body))
		return err
	}
	return renderStatus(stdout, body, time.Now())
}

// anyStatus is the union of the /status shapes of nlb's commands:
// controller (instances, health, steering, proxy), vrrp (instances), proxy
// (an lb.Status at the top level) and client (apiserver, konnectivity).
type anyStatus struct {
	Instances []cplb.InstanceStatus `json:"instances"`
	Health    *cplb.HealthStatus    `json:"health"`
	Steering  *cplb.SteeringStatus  `json:"steering"`
	Proxy     *lb.Status            `json:"proxy"`
	FastPath  *cplb.FastPathStatus  `json:"fast_path"`

	Listeners []string `json:"listeners"` // nlb proxy
	lb.Status

	clientStatus // nlb client: apiserver, konnectivity, discovered...
}

// clientStatus is nlb client's /status, embedded in anyStatus under a name
// of its own (lb.Status is embedded too).
type clientStatus = nllb.Status

// renderStatus writes the human summary of a /status document.
func renderStatus(w io.Writer, body []byte, now time.Time) error {
	var st anyStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("status: not an nlb /status document: %w", err)
	}
	// The server's strings go to a terminal: no escape sequences.
	sanitizeStrings(reflect.ValueOf(&st))
	var b strings.Builder
	section := func(title string) {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(title + "\n")
	}
	if len(st.Instances) > 0 {
		section("VRRP")
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  INSTANCE\tVRID\tIFACE\tSTATE\tPRIO\tMASTER\tVIPS\tTRANSITIONS\tLAST CHANGE")
		for _, in := range st.Instances {
			vips := strings.Join(in.VIPs, ",")
			if in.VIPsConfigured {
				vips += " (here)"
			}
			state := in.State
			if in.Fault {
				state += " (FAULT: link down)"
			}
			master := in.Master
			if in.State == "Master" {
				master = "this node"
			} else if master == "" {
				master = "-"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", in.Name, in.VRID, in.Interface, state,
				in.Priority, master, vips, in.Transitions, ago(in.LastTransition, in.LastReason, now))
		}
		tw.Flush()
	}
	if h := st.Health; h != nil {
		section("Health (the VIP follows it)")
		state := "healthy"
		if !h.Tracked.Healthy {
			state = "FAILED"
		}
		fmt.Fprintf(&b, "  %s: local API server %s checked every %s; priority %d\n", state, h.Target, h.Interval, h.Tracked.Priority)
		fmt.Fprintf(&b, "  fall %d, rise %d (now %d while flapping), weight %d; %d changes", h.Fall, h.Rise,
			h.Tracked.NeededToRecover, h.Weight, h.Tracked.Changes)
		if !h.Tracked.LastChange.IsZero() {
			fmt.Fprintf(&b, ", last %s", ago(h.Tracked.LastChange.UTC().Format(time.RFC3339Nano), "", now))
		}
		b.WriteByte('\n')
		if h.Tracked.LastError != "" {
			fmt.Fprintf(&b, "  last error: %s\n", h.Tracked.LastError)
		}
	}
	if s := st.Steering; s != nil {
		section("Steering")
		switch s.Mode {
		case "off":
			fmt.Fprintf(&b, "  off (disableLoadBalancer: clients reach the API server on the VIP directly)\n")
		case "xdp":
			fmt.Fprintf(&b, "  none: virtualServers run the XDP fast path (below); the proxy serves this node on port %d\n", s.ProxyPort)
		default:
			fmt.Fprintf(&b, "  %s: %s port %d -> proxy port %d on the VIP holder\n", s.Mode, strings.Join(s.VIPs, ","), s.Port, s.ProxyPort)
		}
	}
	if fp := st.FastPath; fp != nil {
		section("XDP fast path (virtualServers: direct server return, Maglev)")
		renderFastPath(&b, fp)
	}
	var api, konn *lb.Status
	if st.KubeconfigServer != "" { // nlb client: its /status always names it
		api, konn = &st.APIServer, &st.Konnectivity
	}
	proxies := []struct {
		name string
		st   *lb.Status
	}{{"Proxy", st.Proxy}, {"Proxy: API server", api}, {"Proxy: konnectivity", konn}}
	if st.Listeners != nil {
		st.Status.Listeners = st.Listeners
		proxies = append(proxies, struct {
			name string
			st   *lb.Status
		}{"Proxy", &st.Status})
	}
	for _, p := range proxies {
		if p.st != nil {
			section(p.name)
			renderProxy(&b, p.st)
		}
	}
	if len(st.Discovered) > 0 {
		fmt.Fprintf(&b, "  discovered: %s\n", strings.Join(st.Discovered, ", "))
	}
	var recent []string
	for _, in := range st.Instances {
		for _, t := range in.Recent {
			recent = append(recent, fmt.Sprintf("  %s  %s  %s -> %s  %s", t.At, in.Name, t.From, t.To, t.Reason))
		}
	}
	if len(recent) > 0 {
		section("Recent transitions")
		b.WriteString(strings.Join(recent, "\n") + "\n")
	}
	if b.Len() == 0 {
		return errors.New("status: the document has nothing nlb status knows how to show")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func renderFastPath(b *strings.Builder, fp *cplb.FastPathStatus) {
	for _, x := range fp.Interfaces {
		role := "Backup: forwards only what clients with a stale ARP entry still send here"
		if x.Forwarding {
			role = "Master: forwards"
		}
		if x.Undecided {
			role += " (adopted from the previous nlb, until VRRP decides)"
		}
		adopted := ""
		if x.Adopted {
			adopted = ", adopted"
		}
		fmt.Fprintf(b, "  %s: %s%s; %s; flow table %d flows, %s\n", x.Interface, x.Attach, adopted, role,
			x.FlowTable.Entries, byteSize(x.FlowTable.MemoryBytes))
		for _, sk := range x.Skipped {
			fmt.Fprintf(b, "  not %s\n", sk)
		}
		if x.Error != "" {
			fmt.Fprintf(b, "  ERROR: %s\n", x.Error)
		}
		for _, s := range x.Services {
			extra := ""
			if s.Persistent {
				extra = ", persistent (client address)"
			}
			if s.FailOpen {
				extra += "; FAILING OPEN: no backend is healthy, all are used"
			}
			fmt.Fprintf(b, "  %s port %d%s: %d packets, %s, %d new flows, %d re-hashed\n", s.VIP, s.Port, extra,
				s.Packets, byteSize(s.Bytes), s.NewFlows, s.Rehashed)
			if s.Problem != "" {
				fmt.Fprintf(b, "    %s\n", s.Problem)
			}
			tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "    BACKEND\tMAC\tHEALTH\tSLOTS\tPACKETS\tBYTES\tNEW FLOWS\tRE-HASHED")
			for _, be := range s.Backends {
				health := "healthy"
				if !be.Healthy {
					health = "unhealthy"
				}
				if be.Problem != "" {
					health = "left out: " + be.Problem
				}
				mac := be.MAC
				if be.Local {
					mac += " (this node)"
				}
				if mac == "" {
					mac = "-"
				}
				fmt.Fprintf(tw, "    %s\t%s\t%s\t%d\t%d\t%s\t%d\t%d\n", be.Address, mac, health, be.Slots,
					be.Packets, byteSize(be.Bytes), be.NewFlows, be.Rehashed)
			}
			tw.Flush()
		}
		var evs []string
		for _, k := range []string{"backup", "loop_guard", "local", "no_backend", "icmp_forwarded", "malformed", "fragment"} {
			if v := x.Events[k]; v > 0 {
				evs = append(evs, fmt.Sprintf("%s %d", k, v))
			}
		}
		if len(evs) > 0 {
			fmt.Fprintf(b, "    events: %s\n", strings.Join(evs, ", "))
		}
	}
}

func renderProxy(b *strings.Builder, s *lb.Status) {
	fail := ""
	if s.FailOpen {
		fail = "; FAILING OPEN: no backend is healthy, all are used"
	}
	fmt.Fprintf(b, "  listening on %s; %d active connections, %d in total%s\n", strings.Join(s.Listeners, ", "), s.Active, s.Total, fail)
	if len(s.Backends) == 0 {
		b.WriteString("  no backends\n")
		return
	}
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  BACKEND\tHEALTH\tACTIVE\tTOTAL\tIN\tOUT\tDIAL FAILURES")
	for _, be := range s.Backends {
		health := "healthy"
		switch {
		case be.Removed:
			health = "removed"
		case !be.Healthy:
			health = "unhealthy"
		case be.Suspect:
			health = "suspect"
		}
		if be.Draining {
			health += ", draining"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%s\t%s\t%d\n", be.Address, health, be.Active, be.Total,
			byteSize(be.BytesIn), byteSize(be.BytesOut), be.DialFailures)
	}
	tw.Flush()
}

// ago renders an RFC 3339 time as "12s ago: reason".
func ago(ts, reason string, now time.Time) string {
	if ts == "" {
		return "-"
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return ts
	}
	s := now.Sub(t).Round(time.Second).String() + " ago"
	if reason != "" {
		s += ": " + reason
	}
	return s
}

// byteSize renders n bytes in B, KiB, MiB or GiB.
func byteSize(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 2 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMG"[i])
}

// printable returns s with every character a terminal would act on
// (control characters such as ESC, C1 controls, bidirectional overrides,
// invalid UTF-8) escaped as in a Go string literal (\x1b, \u202e), so
// that what a server puts in its /status cannot move the cursor, clear
// the screen or disguise text.
func printable(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "\\x%02x", s[0])
		case unicode.IsPrint(r):
			b.WriteString(s[:size])
		default:
			q := strconv.QuoteRune(r) // '\x1b'
			b.WriteString(q[1 : len(q)-1])
		}
		s = s[size:]
	}
	return b.String()
}

// sanitizeStrings applies printable to every string reachable from v
// (through pointers, exported and embedded struct fields, slices and
// maps) that can be set.
func sanitizeStrings(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			sanitizeStrings(v.Elem())
		}
	case reflect.Struct:
		t := v.Type()
		for i := range v.NumField() {
			if f := t.Field(i); f.IsExported() || f.Anonymous {
				sanitizeStrings(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			sanitizeStrings(v.Index(i))
		}
	case reflect.Map:
		if !v.CanSet() {
			return
		}
		for _, k := range v.MapKeys() {
			nk, e := reflect.New(k.Type()).Elem(), reflect.New(v.Type().Elem()).Elem()
			nk.Set(k)
			e.Set(v.MapIndex(k))
			sanitizeStrings(nk)
			sanitizeStrings(e)
			v.SetMapIndex(k, reflect.Value{})
			v.SetMapIndex(nk, e)
		}
	case reflect.String:
		if v.CanSet() {
			v.SetString(printable(v.String()))
		}
	}
}

// escapeJSON returns the valid JSON document j with every character that
// printable would escape written as a \uXXXX escape instead: the same
// document, safe for a terminal. Outside strings valid JSON holds only
// printable ASCII and white space, which stay.
func escapeJSON(j []byte) []byte {
	var b bytes.Buffer
	for len(j) > 0 {
		r, size := utf8.DecodeRune(j)
		if r == '\n' || r == '\t' || r == '\r' || unicode.IsPrint(r) && !(r == utf8.RuneError && size == 1) {
			b.Write(j[:size])
		} else {
			for _, u := range utf16.Encode([]rune{r}) {
				fmt.Fprintf(&b, "\\u%04x", u)
			}
		}
		j = j[size:]
	}
	return b.Bytes()
}
