package cplb

import "log/slog"

// Defaults of OSFastPathOptions.
const (
	// DefaultPinDir is where each interface's datapath is pinned
	// (<DefaultPinDir>/<interface>), on the bpffs systemd mounts.
	DefaultPinDir = "/sys/fs/bpf/nlb"
	// DefaultStateFile keeps the ARP sysctls found before the real-server
	// side changed them (lb/dsr), on a tmpfs that a reboot clears with
	// them.
	DefaultStateFile = "/run/nlb/dsr.json"
	// FastPathHashSeed is the flow hash's seed (xdplb.Options.HashSeed).
	// Every node must use the same, so that a new Master sends
	// established flows to the backends they had: it is fixed, and a
	// change of it is a change of the datapath's format.
	FastPathHashSeed = 0x6e6c6231 // "nlb1"
)

// OSFastPathOptions are OSFastPath's settings.
type OSFastPathOptions struct {
	// PinDir is the bpffs directory of the pinned datapaths. Default
	// DefaultPinDir.
	PinDir string
	// StateFile is lb/dsr's state file. Default DefaultStateFile.
	StateFile string
	// FlowTableSize is the XDP flow table's capacity. Default
	// xdplb.DefaultFlowTableSize.
	FlowTableSize int
	// AttachModes are the attach modes to try, in order ("xdp-native",
	// "xdp-generic", "tcx-ingress"); empty: all three in that order.
	AttachModes []string
	// Logger receives the real-server side's messages.
	Logger *slog.Logger
}
