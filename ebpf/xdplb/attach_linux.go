//go:build linux

package xdplb

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Mode is how a [Datapath] is attached to its interface.
type Mode string

// The attach modes, in the order [Attach] tries them by default (except
// on a veth: [DefaultModes]).
const (
	// ModeNative is XDP in the driver (XDP_FLAGS_DRV_MODE), before the
	// kernel allocates an skb.
	ModeNative Mode = "xdp-native"
	// ModeGeneric is XDP after the skb is built (XDP_FLAGS_SKB_MODE), for
	// drivers without native XDP.
	ModeGeneric Mode = "xdp-generic"
	// ModeTCX is the same load balancer as a tcx ingress program (Linux
	// 6.6), for an interface whose XDP hook another program holds (a
	// CNI's XDP prefilter, for example): forwarding is a redirect to the
	// interface's egress, passing hands the packet to the next tcx program.
	ModeTCX Mode = "tcx-ingress"
)

// ProgramNameTCX is the kernel's name of the tcx program (ModeTCX).
const ProgramNameTCX = "nlb_tc_lb"

// AttachOptions say where and how [Attach] attaches the load balancer.
type AttachOptions struct {
	// Options are the map sizes and the hash seed. A pinned datapath is
	// adopted only with the same ones.
	Options
	// Interface is the index of the interface, in the network namespace
	// of the calling thread.
	Interface int
	// PinDir is a directory on a bpffs (for example
	// /sys/fs/bpf/nlb/<interface>), created if missing, where the maps,
	// the program and the link are pinned: the datapath then outlives the
	// process, and the next Attach with the same PinDir adopts it. Empty:
	// nothing is pinned and the datapath ends with [Datapath.Close].
	PinDir string
	// Modes are the modes to try, in order; the first that attaches is
	// used. Empty: [DefaultModes] for the interface's driver.
	Modes []Mode
}

// Datapath is the load balancer loaded and attached to one interface. Its
// [Objects] configure it.
type Datapath struct {
	*Objects
	link    link.Link
	mode    Mode
	adopted bool
	skipped []error
	dir     string
}

// Mode returns the mode the program runs in.
func (d *Datapath) Mode() Mode { return d.mode }

// Adopted reports whether Attach found this datapath's maps pinned and took
// them over: the configuration (VRRP state, MAC, services, flows, counters)
// is the pinned one until the caller sets its own. If its link was pinned
// in a mode still wanted, the program kept forwarding all along (the same
// [Datapath.LinkID]).
func (d *Datapath) Adopted() bool { return d.adopted }

// Replaced returns why the maps pinned by an earlier nlb could not be
// adopted (they were made with other [Options] sizes, or by a version with
// another map layout), or nil. Attach then made fresh maps, switched the
// pinned link to a program on them (still no flap of the attachment), and
// the datapath starts as a fresh one: Backup, no MAC, no service, an empty
// flow table (established flows are re-hashed by Maglev, to the same
// backends while the backends are unchanged).
func (d *Datapath) Replaced() error { return d.replaced }

// Skipped returns why the modes tried before [Datapath.Mode] did not
// attach (for the log).
func (d *Datapath) Skipped() []error { return slices.Clone(d.skipped) }

// LinkID is the kernel's ID of the attachment (the same across an
// adoption: the link was never replaced).
func (d *Datapath) LinkID() (link.ID, error) {
	info, err := d.link.Info()
	if err != nil {
		return 0, fmt.Errorf("xdplb: link info: %w", err)
	}
	return info.ID, nil
}

// Attach loads the load balancer and attaches it to an interface, trying
// opts.Modes in order (a mode fails when the driver lacks it, or when
// another XDP program holds the interface: XDP programs of both modes
// exclude each other, so ModeTCX is the fallback for the latter).
//
// With opts.PinDir, what is already pinned there is adopted without a
// flap: the pinned maps are reused and their state read back, a new
// program built on them, and the pinned link atomically switched to it
// (bpf_link_update), so that exactly one program is attached throughout.
// A pinned link in a mode no longer in opts.Modes, or on another
// interface, is removed first, and the datapath attached afresh.
func Attach(opts AttachOptions) (*Datapath, error) {
	if opts.Interface < 1 {
		return nil, fmt.Errorf("xdplb: Attach: invalid interface index %d", opts.Interface)
	}
	modes := opts.Modes
	if len(modes) == 0 {
		modes = DefaultModes(interfaceDriver(opts.Interface))
	}
	for i, m := range modes {
		if !slices.Contains(allModes(), m) {
			return nil, fmt.Errorf("xdplb: Attach: Modes[%d]: unknown mode %q (%s, %s or %s)", i, m, ModeNative, ModeGeneric, ModeTCX)
		}
		if slices.Index(modes, m) != i {
			return nil, fmt.Errorf("xdplb: Attach: Modes[%d]: %s given twice", i, m)
		}
	}
	if opts.PinDir != "" {
		if err := checkBPFFS(opts.PinDir); err != nil {
			return nil, err
		}
	}
	o, adopted, err := load(opts.Options, opts.PinDir)
	if err != nil {
		return nil, err
	}
	d := &Datapath{Objects: o, dir: opts.PinDir}
	if err := d.attach(opts.Interface, modes, adopted); err != nil {
		o.Close()
		return nil, err
	}
	return d, nil
}

func allModes() []Mode { return []Mode{ModeNative, ModeGeneric, ModeTCX} }

// DefaultModes is the order Attach tries the modes in when
// AttachOptions.Modes is empty, for an interface of the named driver
// (ethtool's, empty when unknown): native XDP, else generic, else tcx;
// but tcx first on a veth. A frame a native XDP program on a veth sends
// back out (XDP_TX) is dropped unless the veth's peer, in another
// namespace (a container host's side), runs an XDP program too, and
// native XDP on a veth makes the kernel copy the frames the stack built;
// the tcx program needs neither.
func DefaultModes(driver string) []Mode {
	if driver == "veth" {
		return []Mode{ModeTCX, ModeGeneric, ModeNative}
	}
	return []Mode{ModeNative, ModeGeneric, ModeTCX}
}

// interfaceDriver returns the driver of interface index (ETHTOOL_GDRVINFO),
// or "" when it cannot be read.
func interfaceDriver(index int) string {
	ifi, err := net.InterfaceByIndex(index)
	if err != nil {
		return ""
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, ifi.Name)
	if err != nil {
		return ""
	}
	return unix.ByteSliceToString(info.Driver[:])
}

// linkPin is where the link of mode m is pinned: the name says the mode.
func (d *Datapath) linkPin(m Mode) string { return filepath.Join(d.dir, "link-"+string(m)) }

// progPin is where the attached program is pinned.
func (d *Datapath) progPin() string { return filepath.Join(d.dir, "prog") }

func (d *Datapath) program(m Mode) *ebpf.Program {
	if m == ModeTCX {
		return d.objs.NlbTcLb
	}
	return d.objs.NlbXdpLb
}

func (d *Datapath) attach(ifindex int, modes []Mode, mapsAdopted bool) error {
	d.adopted = mapsAdopted
	if d.dir != "" {
		for _, m := range allModes() {
			l, err := link.LoadPinnedLink(d.linkPin(m), nil)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("xdplb: pinned link %s: %w", d.linkPin(m), err)
			}
			if d.link == nil && slices.Contains(modes, m) && linkIfindex(l) == ifindex {
				// Ours, in a mode still wanted: switch it to the new
				// program, which runs on the same maps.
				if err := l.Update(d.program(m)); err != nil {
					l.Close()
					return fmt.Errorf("xdplb: update pinned %s link: %w", m, err)
				}
				d.link, d.mode = l, m
				continue
			}
			// Another mode, another interface, or a stale link whose
			// interface is gone: remove it.
			if err := removeLink(l); err != nil {
				return err
			}
		}
	}
	if d.link == nil {
		for _, m := range modes {
			l, err := attachMode(m, d.program(m), ifindex)
			if err != nil {
				d.skipped = append(d.skipped, fmt.Errorf("%s: %w", m, err))
				continue
			}
			d.link, d.mode = l, m
			break
		}
		if d.link == nil {
			return fmt.Errorf("xdplb: attach to interface %d: %w", ifindex, errors.Join(d.skipped...))
		}
		if d.dir != "" {
			if err := d.link.Pin(d.linkPin(d.mode)); err != nil {
				d.link.Close()
				return fmt.Errorf("xdplb: pin link: %w", err)
			}
		}
	}
	if d.dir != "" {
		if err := os.Remove(d.progPin()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("xdplb: unpin old program: %w", err)
		}
		if err := d.program(d.mode).Pin(d.progPin()); err != nil {
			return fmt.Errorf("xdplb: pin program: %w", err)
		}
	}
	return nil
}

func attachMode(m Mode, prog *ebpf.Program, ifindex int) (link.Link, error) {
	switch m {
	case ModeNative:
		return link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
	case ModeGeneric:
		return link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPGenericMode})
	default:
		return link.AttachTCX(link.TCXOptions{Program: prog, Interface: ifindex, Attach: ebpf.AttachTCXIngress})
	}
}

// linkIfindex returns the interface of an XDP or tcx link, 0 if it has
// none (its interface was removed).
func linkIfindex(l link.Link) int {
	info, err := l.Info()
	if err != nil {
		return 0
	}
	if x := info.XDP(); x != nil {
		return int(x.Ifindex)
	}
	if t := info.TCX(); t != nil {
		return int(t.Ifindex)
	}
	return 0
}

// removeLink unpins, detaches and closes a link.
func removeLink(l link.Link) error {
	var errs []error
	if err := l.Unpin(); err != nil {
		errs = append(errs, fmt.Errorf("xdplb: unpin link: %w", err))
	}
	if err := l.Detach(); err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
		errs = append(errs, fmt.Errorf("xdplb: detach link: %w", err))
	}
	if err := l.Close(); err != nil {
		errs = append(errs, fmt.Errorf("xdplb: close link: %w", err))
	}
	return errors.Join(errs...)
}

// Close releases the process's hold on the datapath. A pinned datapath
// keeps forwarding by its maps (as after a crash) for the next Attach to
// adopt; an unpinned one is detached.
func (d *Datapath) Close() error {
	var errs []error
	if d.link != nil {
		errs = append(errs, d.link.Close())
		d.link = nil
	}
	errs = append(errs, d.Objects.Close())
	return errors.Join(errs...)
}

// Remove detaches the datapath and removes everything pinned: a graceful
// stop leaves nothing behind.
func (d *Datapath) Remove() error {
	var errs []error
	if d.link != nil {
		errs = append(errs, removeLink(d.link))
		d.link = nil
	}
	errs = append(errs, d.Objects.Close())
	if d.dir != "" {
		errs = append(errs, RemovePinned(d.dir))
	}
	return errors.Join(errs...)
}

// RemovePinned detaches and removes a datapath pinned in dir by an nlb
// that is gone (for example when nlb no longer runs the XDP mode): its
// links in every mode, its program and maps, and dir itself. A missing
// dir is not an error.
func RemovePinned(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var errs []error
	for _, m := range allModes() {
		p := filepath.Join(dir, "link-"+string(m))
		l, err := link.LoadPinnedLink(p, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("xdplb: pinned link %s: %w", p, err))
			continue
		}
		errs = append(errs, removeLink(l))
	}
	if err := os.Remove(filepath.Join(dir, "prog")); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("xdplb: unpin program: %w", err))
	}
	errs = append(errs, removePinnedMaps(dir))
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("xdplb: remove %s: %w", dir, err))
	}
	return errors.Join(errs...)
}

// bpffsMagic is BPF_FS_MAGIC (include/uapi/linux/magic.h).
const bpffsMagic = 0xcafe4a11

// checkBPFFS creates dir if needed and checks that it is on a bpffs.
func checkBPFFS(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("xdplb: pin directory: %w", err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("xdplb: pin directory: %w", err)
	}
	if uint32(st.Type) != bpffsMagic {
		return fmt.Errorf("xdplb: pin directory %s is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)", dir)
	}
	return nil
}
