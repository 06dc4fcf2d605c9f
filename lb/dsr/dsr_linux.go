//go:build linux

package dsr

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// osState is what Up opened, in the namespace it ran in.
type osState struct {
	mu      sync.Mutex
	nl      *netlink.Handle
	r       *rtnl
	index   int  // the link holding the VIPs
	onLo    bool // no dummy link type: the VIPs are on lo
	sysctls map[string]*os.File
	orig    map[string]string // the values to restore, by key
	up      bool
}

// state is the StateFile's content.
type state struct {
	// Sysctls are the values found before nlb changed them, by key
	// ("net/ipv4/conf/all/arp_ignore").
	Sysctls map[string]string `json:"sysctls"`
}

// Link returns the name of the link the VIPs are on after Up: the dummy
// link, or "lo" where the kernel has no dummy link type.
func (s *RealServer) Link() string {
	s.os.mu.Lock()
	defer s.os.mu.Unlock()
	if s.os.onLo {
		return "lo"
	}
	return s.cfg.Link
}

// wanted are the ARP sysctls Up sets: the minimum value of each.
func (s *RealServer) wanted() map[string]int {
	w := make(map[string]int)
	for _, ifName := range append([]string{"all"}, s.cfg.Interfaces...) {
		w["net/ipv4/conf/"+ifName+"/arp_ignore"] = 1
		w["net/ipv4/conf/"+ifName+"/arp_announce"] = 2
	}
	return w
}

// Up puts the VIPs on the dummy link (created if needed) or on lo, removes
// nlb's DR addresses that are no longer VIPs (a predecessor's), and sets
// the ARP sysctls, recording the values found in the state file first. It
// acts in the network namespace of the calling thread and may be called
// again (with the same result).
func (s *RealServer) Up() error {
	s.os.mu.Lock()
	defer s.os.mu.Unlock()
	if err := s.open(); err != nil {
		return err
	}
	if err := s.setSysctls(); err != nil {
		return err
	}
	if err := s.ensureLink(); err != nil {
		return err
	}
	if err := s.ensureAddrs(); err != nil {
		return err
	}
	s.os.up = true
	return nil
}

func (s *RealServer) setSysctls() error {
	if s.os.orig == nil {
		st, err := readState(s.cfg.StateFile)
		if err != nil {
			return err
		}
		if len(st.Sysctls) > 0 {
			s.cfg.Logger.Info("dsr: restoring the ARP settings recorded by a previous nlb on stop", "file", s.cfg.StateFile)
		}
		s.os.orig = st.Sysctls
		if s.os.orig == nil {
			s.os.orig = make(map[string]string)
		}
		s.os.sysctls = make(map[string]*os.File)
	}
	want := s.wanted()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	cur := make(map[string]int, len(keys))
	changed := false
	for _, k := range keys {
		f := s.os.sysctls[k]
		if f == nil {
			var err error
			if f, err = os.OpenFile(filepath.Join("/proc/sys", k), os.O_RDWR, 0); err != nil {
				return fmt.Errorf("dsr: sysctl %s (is the interface there?): %w", strings.ReplaceAll(k, "/", "."), err)
			}
			s.os.sysctls[k] = f
		}
		v, err := readSysctl(f)
		if err != nil {
			return fmt.Errorf("dsr: sysctl %s: %w", k, err)
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("dsr: sysctl %s: %q is not a number", k, v)
		}
		cur[k] = n
		if _, ok := s.os.orig[k]; !ok {
			s.os.orig[k] = v
			changed = true
		}
	}
	// Settings recorded by a predecessor for interfaces no longer
	// configured: opened now, in this namespace, for Down to restore.
	for k := range s.os.orig {
		if _, ok := s.os.sysctls[k]; ok || !sysctlKeyOK(k) {
			continue
		}
		f, err := os.OpenFile(filepath.Join("/proc/sys", k), os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("dsr: sysctl %s: %w", k, err)
		}
		s.os.sysctls[k] = f
	}
	if changed {
		if err := writeState(s.cfg.StateFile, state{Sysctls: s.os.orig}); err != nil {
			return err
		}
	}
	for _, k := range keys {
		if cur[k] >= want[k] {
			continue
		}
		if err := writeSysctl(s.os.sysctls[k], strconv.Itoa(want[k])); err != nil {
			return fmt.Errorf("dsr: sysctl %s: %w", k, err)
		}
	}
	return nil
}

func (s *RealServer) ensureLink() error {
	if s.os.index != 0 {
		return nil
	}
	link, err := s.os.nl.LinkByName(s.cfg.Link)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		err = s.os.nl.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: s.cfg.Link}})
		if errors.Is(err, unix.EOPNOTSUPP) {
			lo, err := s.os.nl.LinkByName("lo")
			if err != nil {
				return fmt.Errorf("dsr: lo: %w", err)
			}
			s.os.index, s.os.onLo = lo.Attrs().Index, true
			s.cfg.Logger.Warn("dsr: the kernel has no dummy link type; the VIPs go on lo, marked as nlb's",
				"link", s.cfg.Link, "proto", AddrProto)
			return nil
		}
		if err != nil {
			return fmt.Errorf("dsr: create %s: %w", s.cfg.Link, err)
		}
		if link, err = s.os.nl.LinkByName(s.cfg.Link); err != nil {
			return fmt.Errorf("dsr: %s: %w", s.cfg.Link, err)
		}
		if err := s.os.nl.LinkSetAlias(link, LinkAlias); err != nil {
			return fmt.Errorf("dsr: %s: set alias: %w", s.cfg.Link, err)
		}
	case err != nil:
		return fmt.Errorf("dsr: %s: %w", s.cfg.Link, err)
	case link.Type() != "dummy":
		return fmt.Errorf("dsr: %s exists and is a %s link, not a dummy: remove it or choose another Link", s.cfg.Link, link.Type())
	}
	if err := s.os.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("dsr: %s up: %w", s.cfg.Link, err)
	}
	s.os.index = link.Attrs().Index
	return nil
}

func (s *RealServer) ensureAddrs() error {
	addrs, err := s.os.r.addrs()
	if err != nil {
		return fmt.Errorf("dsr: list addresses: %w", err)
	}
	for _, e := range addrs {
		if e.proto != AddrProto {
			continue
		}
		if e.index == s.os.index && e.prefix.Bits() == e.prefix.Addr().BitLen() && slices.Contains(s.cfg.VIPs, e.prefix.Addr()) {
			continue
		}
		if err := s.os.r.delAddr(e); err != nil {
			return fmt.Errorf("dsr: remove leftover %s: %w", e.prefix, err)
		}
		s.cfg.Logger.Info("dsr: removed a DR address that is no longer a VIP here", "address", e.prefix, "ifindex", e.index)
	}
	for _, v := range s.cfg.VIPs {
		if err := s.os.r.addVIP(s.os.index, v); err != nil {
			return fmt.Errorf("dsr: add %s to %s: %w", v, s.linkName(), err)
		}
	}
	return nil
}

func (s *RealServer) linkName() string {
	if s.os.onLo {
		return "lo"
	}
	return s.cfg.Link
}

// Down removes every DR address nlb added (on any link), the dummy link
// if nlb created it, and restores the ARP sysctls from the state file,
// which it then removes. After Down the namespace is as before Up, also
// when Up ran in a previous nlb that crashed. Down without Up is allowed
// (it opens what it needs in the calling thread's namespace).
func (s *RealServer) Down() error {
	s.os.mu.Lock()
	defer s.os.mu.Unlock()
	if err := s.open(); err != nil {
		return err
	}
	var errs []error
	addrs, err := s.os.r.addrs()
	if err != nil {
		errs = append(errs, fmt.Errorf("dsr: list addresses: %w", err))
	}
	for _, e := range addrs {
		if e.proto != AddrProto {
			continue
		}
		if err := s.os.r.delAddr(e); err != nil {
			errs = append(errs, fmt.Errorf("dsr: remove %s: %w", e.prefix, err))
		}
	}
	if link, err := s.os.nl.LinkByName(s.cfg.Link); err == nil && link.Type() == "dummy" && link.Attrs().Alias == LinkAlias {
		if err := s.os.nl.LinkDel(link); err != nil {
			errs = append(errs, fmt.Errorf("dsr: delete %s: %w", s.cfg.Link, err))
		}
	}
	errs = append(errs, s.restoreSysctls())
	s.os.index, s.os.up = 0, false
	return errors.Join(errs...)
}

// open opens the netlink sockets in the calling thread's namespace, once.
func (s *RealServer) open() error {
	if s.os.nl != nil {
		return nil
	}
	nh, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("dsr: netlink: %w", err)
	}
	r, err := openRTNL()
	if err != nil {
		nh.Close()
		return fmt.Errorf("dsr: netlink: %w", err)
	}
	s.os.nl, s.os.r = nh, r
	return nil
}

func (s *RealServer) restoreSysctls() error {
	if s.os.orig == nil {
		st, err := readState(s.cfg.StateFile)
		if err != nil {
			return err
		}
		s.os.orig = st.Sysctls
	}
	var errs []error
	keys := make([]string, 0, len(s.os.orig))
	for k := range s.os.orig {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !sysctlKeyOK(k) {
			errs = append(errs, fmt.Errorf("dsr: state file %s: %q is not an ARP sysctl", s.cfg.StateFile, k))
			continue
		}
		f := s.os.sysctls[k]
		if f == nil && s.os.sysctls != nil {
			continue // Up found no such setting: the interface is gone
		}
		if f == nil {
			var err error
			if f, err = os.OpenFile(filepath.Join("/proc/sys", k), os.O_RDWR, 0); errors.Is(err, os.ErrNotExist) {
				continue // the interface is gone, and its settings with it
			} else if err != nil {
				errs = append(errs, fmt.Errorf("dsr: sysctl %s: %w", k, err))
				continue
			}
			defer f.Close()
		}
		if err := writeSysctl(f, s.os.orig[k]); err != nil {
			errs = append(errs, fmt.Errorf("dsr: restore sysctl %s: %w", k, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err // keep the state file for the next try
	}
	if err := os.Remove(s.cfg.StateFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("dsr: remove state file: %w", err)
	}
	s.os.orig = nil
	return nil
}

// Close releases the sockets and files without undoing anything (as a
// crash would): a later Up or Down, by this nlb or the next, finds the
// state file.
func (s *RealServer) Close() error {
	s.os.mu.Lock()
	defer s.os.mu.Unlock()
	for _, f := range s.os.sysctls {
		f.Close()
	}
	s.os.sysctls = nil
	s.os.orig = nil
	if s.os.r != nil {
		s.os.r.close()
	}
	if s.os.nl != nil {
		s.os.nl.Close()
	}
	s.os.nl, s.os.r, s.os.index = nil, nil, 0
	return nil
}

const maxStateFile = 64 << 10

func readState(path string) (state, error) {
	var st state
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("dsr: state file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return st, fmt.Errorf("dsr: state file %s: %w", path, err)
	}
	if len(b) > maxStateFile {
		return st, fmt.Errorf("dsr: state file %s: larger than %d bytes", path, maxStateFile)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("dsr: state file %s: %w", path, err)
	}
	return st, nil
}

func writeState(path string, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("dsr: state file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("dsr: state file: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("dsr: state file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("dsr: state file: %w", err)
	}
	return nil
}

func readSysctl(f *os.File) (string, error) {
	b := make([]byte, 64)
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimSpace(string(b[:n])), nil
}

func writeSysctl(f *os.File, v string) error {
	_, err := f.WriteAt([]byte(v+"\n"), 0)
	return err
}
