package k8s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the Config fields left empty.
const (
	// DefaultNamespace is the namespace of the API server service.
	DefaultNamespace = "default"
	// DefaultService is the service kube-apiserver keeps its own endpoints in.
	DefaultService = "kubernetes"
	// DefaultPortName is the name of the API port in that service.
	DefaultPortName = "https"
)

// cacheRetry is how long Run waits before it writes a cache file again after
// a failed write (k0s retries failed NLLB config writes every 60 s).
const cacheRetry = time.Minute

// Config configures a Discovery.
type Config struct {
	// Client reaches the cluster's API (NewAPI). Required.
	Client API
	// Namespace of the service; default "default".
	Namespace string
	// Service whose EndpointSlices are watched; default "kubernetes".
	Service string
	// PortName is the name of the slice port to use; default "https".
	PortName string
	// Port, if non-zero, replaces the discovered port, and slices need no
	// port named PortName. k0s's CPLB ignores endpoint ports and dials
	// spec.api.port; the NLLB sends konnectivity (8132) to the same hosts.
	Port uint16
	// CacheFile, if set, holds the last good list. Run reads it at start
	// and writes it atomically (temporary file and rename, mode 0600) on
	// every change.
	CacheFile string
	// Logger receives the changes and errors; nil discards them.
	Logger *slog.Logger
	// OnChange, if set, receives every new list: sorted, without
	// duplicates, never empty. It is called from one goroutine at a time
	// (Run's), so a slow OnChange delays later updates but loses none:
	// changes made meanwhile are merged into the next call.
	OnChange func(backends []netip.AddrPort)
}

// Discovery watches the API servers of a cluster. Create it with New and
// start it with Run.
type Discovery struct {
	cfg Config
	log *slog.Logger
	// selector is the label selector of the service's slices.
	selector string
	running  atomic.Bool

	mu       sync.Mutex
	backends []netip.AddrPort
}

// New checks cfg, fills in its defaults and returns a Discovery. It does no
// I/O: nothing is read or contacted before Run.
func New(cfg Config) (*Discovery, error) {
	if cfg.Client == nil {
		return nil, errors.New("k8s: discovery: no client")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.Service == "" {
		cfg.Service = DefaultService
	}
	if cfg.PortName == "" {
		cfg.PortName = DefaultPortName
	}
	if err := checkDNSLabel(cfg.Namespace); err != nil {
		return nil, fmt.Errorf("k8s: discovery: namespace %q: %w", cfg.Namespace, err)
	}
	if err := checkLabelValue(cfg.Service); err != nil {
		return nil, fmt.Errorf("k8s: discovery: service %q: %w", cfg.Service, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Discovery{cfg: cfg, log: log, selector: labelServiceName + "=" + cfg.Service}, nil
}

// Backends returns the last good list, sorted and never empty, or nil before
// the first one (from the API or the cache file). The caller may keep and
// modify the result.
func (d *Discovery) Backends() []netip.AddrPort {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.backends)
}

// Run watches the service's EndpointSlices until ctx ends, calling OnChange
// with every new list. If CacheFile holds a list, Run first applies it (with
// Config.Port, if set) and calls OnChange with it; the API's first non-empty
// list replaces it if different.
//
// Run never returns because of API errors: it lists and watches again
// after an exponential backoff (0.8 s doubling to 30 s, as client-go's
// reflector), and logs each failure. Once ctx ends, Run stops the watch,
// waits for every goroutine it started and returns nil. It returns an error
// only when called a second time.
func (d *Discovery) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("k8s: discovery: Run called twice")
	}
	if ctx.Err() != nil {
		return nil
	}
	d.log.Info("watching API server endpoints",
		"namespace", d.cfg.Namespace, "service", d.cfg.Service, "port_name", d.cfg.PortName, "port", d.cfg.Port)

	// written is the list the cache file holds, so that it is rewritten
	// only when the list changes.
	var written []netip.AddrPort
	if d.cfg.CacheFile != "" {
		b, err := LoadCache(d.cfg.CacheFile)
		if err != nil {
			d.log.Warn("no cached API server list", "file", d.cfg.CacheFile, "err", err)
		} else {
			written = b
			if d.cfg.Port != 0 {
				// The file may be from a run with another port.
				b = withPort(b, d.cfg.Port)
			}
			d.log.Info("using the cached API server list until the API answers",
				"file", d.cfg.CacheFile, "backends", addrStrings(b))
			d.apply(b)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel() // ends the list or watch in flight
		wg.Wait()
	}()
	// The reflector only wakes the loop below, which reads the store:
	// bursts of events become one computation, and OnChange is called
	// from this goroutine alone.
	st := newSliceStore()
	kick := make(chan struct{}, 1)
	notify := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.reflect(ctx, st, notify)
	}()

	var retry *time.Timer
	var retryC <-chan time.Time
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	// fromAPI says whether a list from the API (not the cache) has been
	// applied. The first one always reaches OnChange, even when it equals
	// the cached list, so a caller that bootstrapped from the cache plus
	// other addresses learns that the list is now authoritative.
	fromAPI := false
	for {
		select {
		case <-ctx.Done():
			d.log.Info("stopped watching API server endpoints")
			return nil
		case <-kick:
		case <-retryC:
			retryC = nil
		}
		objs, synced := st.list()
		if !synced {
			continue
		}
		list := d.compute(objs)
		if len(list) == 0 {
			if cur := d.Backends(); cur != nil {
				d.log.Warn("refusing to apply an empty API server list", "keeping", addrStrings(cur))
			} else {
				d.log.Warn("refusing to apply an empty API server list", "keeping", "nothing yet")
			}
			continue
		}
		if !fromAPI || !slices.Equal(list, d.Backends()) {
			d.log.Info("API servers changed", "backends", addrStrings(list), "first_from_api", !fromAPI)
			fromAPI = true
			d.apply(list)
		}
		if d.cfg.CacheFile != "" && !slices.Equal(list, written) {
			if err := writeCache(d.cfg.CacheFile, list); err != nil {
				d.log.Error("cannot write the API server cache", "file", d.cfg.CacheFile, "err", err, "retry_in", cacheRetry)
				if retryC == nil {
					if retry == nil {
						retry = time.NewTimer(cacheRetry)
					} else {
						retry.Reset(cacheRetry)
					}
					retryC = retry.C
				}
			} else {
				written = list
			}
		}
	}
}

// apply stores list and hands a copy to OnChange.
func (d *Discovery) apply(list []netip.AddrPort) {
	d.mu.Lock()
	d.backends = slices.Clone(list)
	d.mu.Unlock()
	if d.cfg.OnChange != nil {
		d.cfg.OnChange(slices.Clone(list))
	}
}

// withPort returns b with every port replaced by port, sorted and without
// duplicates.
func withPort(b []netip.AddrPort, port uint16) []netip.AddrPort {
	out := make([]netip.AddrPort, len(b))
	for i, ap := range b {
		out[i] = netip.AddrPortFrom(ap.Addr(), port)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return slices.Compact(out)
}

// compute merges the slices into a sorted list without duplicates. Slices
// of other services (a watch that ignored the selector) are skipped.
func (d *Discovery) compute(objs []*storedSlice) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range objs {
		if s.Metadata.Namespace != d.cfg.Namespace || s.Metadata.Labels[labelServiceName] != d.cfg.Service {
			continue
		}
		if s.decodeErr != "" {
			d.log.Warn("ignoring an endpoint slice that does not decode", "slice", s.Metadata.Name, "err", s.decodeErr)
			continue
		}
		out = d.appendSlice(out, &s.endpointSlice)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return slices.Compact(out)
}

// appendSlice appends the ready endpoints of s with their port.
func (d *Discovery) appendSlice(out []netip.AddrPort, s *endpointSlice) []netip.AddrPort {
	var is func(netip.Addr) bool
	switch s.AddressType {
	case addressTypeIPv4:
		is = netip.Addr.Is4
	case addressTypeIPv6:
		is = netip.Addr.Is6
	default: // FQDN, or a type this code does not know
		return out
	}
	port := d.cfg.Port
	if port == 0 {
		var ok bool
		if port, ok = slicePort(s.Ports, d.cfg.PortName); !ok {
			d.log.Debug("endpoint slice has no such TCP port", "slice", s.Metadata.Name, "port_name", d.cfg.PortName)
			return out
		}
	}
	for _, e := range s.Endpoints {
		if !ready(e.Conditions) {
			continue
		}
		for _, a := range e.Addresses {
			ip, err := netip.ParseAddr(a)
			if err != nil || !is(ip) || ip.Zone() != "" || ip.IsUnspecified() {
				d.log.Debug("ignoring endpoint address", "slice", s.Metadata.Name, "address", a)
				continue
			}
			out = append(out, netip.AddrPortFrom(ip, port))
		}
	}
	return out
}

// slicePort returns the TCP port called name.
func slicePort(ports []endpointPort, name string) (uint16, bool) {
	for _, p := range ports {
		if p.Name == nil || *p.Name != name || p.Port == nil {
			continue
		}
		if p.Protocol != nil && *p.Protocol != protocolTCP {
			continue
		}
		if *p.Port <= 0 || *p.Port > 65535 {
			continue
		}
		return uint16(*p.Port), true
	}
	return 0, false
}

// ready reports whether an endpoint with conditions c may receive traffic:
// ready is true or unset (the EndpointSlice API defines unset as ready) and
// terminating is not true.
func ready(c endpointConditions) bool {
	if c.Ready != nil && !*c.Ready {
		return false
	}
	return c.Terminating == nil || !*c.Terminating
}
