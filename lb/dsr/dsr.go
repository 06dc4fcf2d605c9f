package dsr

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
)

// Defaults.
const (
	// DefaultLink is k0s's name of the dummy link for the VIPs.
	DefaultLink = "dummyvip0"
	// AddrProto is the IFA_PROTO mark of nlb's DR addresses.
	AddrProto = 0x6f
	// LinkAlias is the alias (IFLA_IFALIAS) of a dummy link nlb created.
	LinkAlias = "nlb: direct server return VIPs"

	maxVIPs     = 256
	maxProblems = 10
	ifNameMax   = 15 // IFNAMSIZ - 1
)

// Config is what a RealServer sets up.
type Config struct {
	// VIPs are the virtual addresses the node serves as a real server.
	VIPs []netip.Addr
	// Link is the dummy link to create for them. Default DefaultLink.
	Link string
	// Interfaces are the interfaces the VIPs' traffic arrives on (the
	// VRRP interfaces), whose arp_ignore and arp_announce are set besides
	// "all".
	Interfaces []string
	// StateFile keeps the sysctl values found before Up, for Down (also
	// a successor's after a crash). Required; put it on a tmpfs such as
	// /run/nlb/dsr.json.
	StateFile string
	// Logger receives what Up and Down did that the operator should know
	// (the lo fallback, leftovers removed). Required.
	Logger *slog.Logger
}

// RealServer puts the VIPs on dummyvip0 (or lo) and sets the ARP sysctls.
// Create it with New; Up applies, Down undoes.
type RealServer struct {
	cfg Config
	os  osState
}

// New validates cfg and returns a RealServer. It does no I/O.
func New(cfg Config) (*RealServer, error) {
	if cfg.Link == "" {
		cfg.Link = DefaultLink
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	vips := make([]netip.Addr, len(cfg.VIPs))
	for i, v := range cfg.VIPs {
		vips[i] = v.Unmap()
	}
	cfg.VIPs = vips
	return &RealServer{cfg: cfg}, nil
}

// Remove undoes, as RealServer.Down does, what an nlb that is gone set up
// as a real server: every DR address (on any link), the dummyvip0 it
// created, and the ARP sysctls recorded in stateFile. It is for a node
// that no longer runs the fast path (nlb controller in another mode), so
// it needs no VIPs; with nothing to undo it does nothing. It acts in the
// network namespace of the calling thread.
func Remove(stateFile string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &RealServer{cfg: Config{Link: DefaultLink, StateFile: stateFile, Logger: log}}
	defer s.Close()
	return s.Down()
}

// validate reports every problem (at most maxProblems), naming the field.
func (c Config) validate() error {
	var errs []error
	add := func(format string, args ...any) {
		if len(errs) < maxProblems {
			errs = append(errs, fmt.Errorf("dsr: "+format, args...))
		}
	}
	if len(c.VIPs) == 0 {
		add("VIPs: none given")
	}
	if len(c.VIPs) > maxVIPs {
		add("VIPs: %d, at most %d", len(c.VIPs), maxVIPs)
	}
	seen := make(map[netip.Addr]int, len(c.VIPs))
	for i, v := range c.VIPs {
		a := v.Unmap()
		switch {
		case !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.Zone() != "":
			add("VIPs[%d]: %q is not a unicast address a node can serve", i, v)
		default:
			if j, dup := seen[a]; dup {
				add("VIPs[%d]: %s is also VIPs[%d]", i, a, j)
			}
			seen[a] = i
		}
	}
	checkName := func(field, n string) {
		if n == "" || len(n) > ifNameMax || strings.ContainsAny(n, "/ \t\n:") || n == "." || n == ".." {
			add("%s: %q is not an interface name", field, n)
		}
	}
	checkName("Link", c.Link)
	if c.Link == "lo" {
		add("Link: lo is the fallback, not a link to create")
	}
	for i, n := range c.Interfaces {
		checkName(fmt.Sprintf("Interfaces[%d]", i), n)
	}
	if c.StateFile == "" {
		add("StateFile: required (the sysctl values to restore)")
	}
	if c.Logger == nil {
		add("Logger: required")
	}
	return errors.Join(errs...)
}

// sysctlKeyOK accepts the keys Up records: an interface's (or all's)
// arp_ignore or arp_announce.
func sysctlKeyOK(k string) bool {
	rest, ok := strings.CutPrefix(k, "net/ipv4/conf/")
	if !ok {
		return false
	}
	ifName, name, ok := strings.Cut(rest, "/")
	return ok && ifName != "" && ifName != "." && ifName != ".." && (name == "arp_ignore" || name == "arp_announce")
}
