package k8s

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/nlbtest"
	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

// wait bounds every wait in these tests. Nothing is timed: a healthy run
// takes milliseconds (or about a second where the reflector backs off).
const wait = 20 * time.Second

func ptr[T any](v T) *T { return &v }

// ep is an endpoint with the given conditions.
func ep(ready, terminating *bool, addrs ...string) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses:  addrs,
		Conditions: discoveryv1.EndpointConditions{Ready: ready, Terminating: terminating},
	}
}

// port is a TCP slice port.
func port(name string, n int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr(name), Port: ptr(n), Protocol: ptr(corev1.ProtocolTCP)}
}

// slice is an EndpointSlice of service svc in namespace ns.
func slice(ns, name, svc string, at discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: ns,
			Labels:    map[string]string{discoveryv1.LabelServiceName: svc, "endpointslice.kubernetes.io/managed-by": "test"},
		},
		AddressType: at,
		Ports:       ports,
		Endpoints:   eps,
	}
}

// apiSlice is a slice of default/kubernetes with port https/6443 whose
// endpoints are all ready.
func apiSlice(name string, at discoveryv1.AddressType, addrs ...string) *discoveryv1.EndpointSlice {
	eps := make([]discoveryv1.Endpoint, len(addrs))
	for i, a := range addrs {
		eps[i] = ep(ptr(true), nil, a)
	}
	return slice("default", name, "kubernetes", at, []discoveryv1.EndpointPort{port("https", 6443)}, eps...)
}

func aps(ss ...string) []netip.AddrPort {
	out := make([]netip.AddrPort, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddrPort(s)
	}
	return out
}

// syncBuffer is a log destination safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness runs a Discovery against a fake clientset.
type harness struct {
	t        *testing.T
	client   *fake.Clientset
	d        *Discovery
	changes  chan []netip.AddrPort
	watching chan struct{}
	logs     *syncBuffer
	cancel   context.CancelFunc
	done     chan error
	stopped  bool
}

// start runs a Discovery on cfg (Client, Logger and OnChange are filled in)
// over a fake clientset holding objs. It fails the test if goroutines
// remain after the Discovery stops. The fake's watches do not know
// resource versions, so events between the informer's list and its watch
// would be lost: start waits for the first watch unless waitWatch is false.
func start(t *testing.T, cfg Config, waitWatch bool, objs ...runtime.Object) *harness {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	h := &harness{
		t:        t,
		client:   fake.NewClientset(objs...),
		changes:  make(chan []netip.AddrPort, 100),
		watching: make(chan struct{}, 100),
		logs:     &syncBuffer{},
		done:     make(chan error, 1),
	}
	h.client.PrependWatchReactor("endpointslices", func(a clienttesting.Action) (bool, watch.Interface, error) {
		w, err := h.client.Tracker().Watch(a.GetResource(), a.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		h.watching <- struct{}{}
		return true, w, nil
	})
	cfg.Client = fakeAPI{h.client}
	cfg.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var calls atomic.Int32
	cfg.OnChange = func(b []netip.AddrPort) {
		if calls.Add(1) > 1 {
			t.Error("OnChange called concurrently")
		}
		defer calls.Add(-1)
		h.changes <- b
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- d.Run(ctx) }()
	t.Cleanup(func() {
		h.stop()
		goleak.VerifyNone(t, ignore)
	})
	if waitWatch {
		h.waitWatch()
	}
	return h
}

// waitWatch waits for the informer's next watch.
func (h *harness) waitWatch() {
	h.t.Helper()
	select {
	case <-h.watching:
	case err := <-h.done:
		h.t.Fatalf("Run returned %v before watching", err)
	case <-time.After(wait):
		h.t.Fatal("no watch started")
	}
}

// stop cancels Run and checks that it returns nil.
func (h *harness) stop() {
	h.t.Helper()
	if h.stopped {
		return
	}
	h.stopped = true
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(wait):
		h.t.Error("Run did not return after its context ended")
	}
}

// next returns the next list given to OnChange.
func (h *harness) next() []netip.AddrPort {
	h.t.Helper()
	select {
	case b := <-h.changes:
		return b
	case err := <-h.done:
		h.t.Fatalf("Run returned %v", err)
	case <-time.After(wait):
		h.t.Fatalf("no OnChange; logs:\n%s", h.logs)
	}
	return nil
}

// expect checks that the next OnChange and Backends give want.
func (h *harness) expect(want ...string) {
	h.t.Helper()
	w := aps(want...)
	if got := h.next(); !slices.Equal(got, w) {
		h.t.Fatalf("OnChange(%v), want %v", got, w)
	}
	if got := h.d.Backends(); !slices.Equal(got, w) {
		h.t.Fatalf("Backends() = %v, want %v", got, w)
	}
}

// waitLog waits until the logs contain s n times.
func (h *harness) waitLog(s string, n int) {
	h.t.Helper()
	waitLogs(h.t, h.logs, s, n)
}

// waitLogs waits (nlbtest.Eventually) until logs contain s n times.
func waitLogs(t *testing.T, logs *syncBuffer, s string, n int) {
	t.Helper()
	nlbtest.Eventually(t, wait, fmt.Sprintf("log %q %d times", s, n), func() error {
		if got := logs.String(); strings.Count(got, s) < n {
			return fmt.Errorf("logs:\n%s", got)
		}
		return nil
	})
}

func (h *harness) create(s *discoveryv1.EndpointSlice) {
	h.t.Helper()
	if _, err := h.client.DiscoveryV1().EndpointSlices(s.Namespace).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) update(s *discoveryv1.EndpointSlice) {
	h.t.Helper()
	if _, err := h.client.DiscoveryV1().EndpointSlices(s.Namespace).Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) delete(ns, name string) {
	h.t.Helper()
	if err := h.client.DiscoveryV1().EndpointSlices(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func TestNew(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.HasPrefix(err.Error(), "k8s: ") {
		t.Errorf("New without a client: %v", err)
	}
	client := fake.NewClientset()
	d, err := New(Config{Client: fakeAPI{client}})
	if err != nil {
		t.Fatal(err)
	}
	if d.cfg.Namespace != "default" || d.cfg.Service != "kubernetes" || d.cfg.PortName != "https" || d.log == nil {
		t.Errorf("defaults: %+v", d.cfg)
	}
	if got := d.selector; got != "kubernetes.io/service-name=kubernetes" {
		t.Errorf("selector %q", got)
	}
	if d.Backends() != nil {
		t.Errorf("Backends() before Run = %v", d.Backends())
	}
	for _, cfg := range []Config{
		{Client: fakeAPI{client}, Service: "not a label value!"},
		{Client: fakeAPI{client}, Namespace: "Not_A_Namespace"},
		{Client: fakeAPI{client}, Namespace: "-default"},
		{Client: fakeAPI{client}, Namespace: strings.Repeat("a", 64)},
		{Client: fakeAPI{client}, Service: "-kubernetes"},
		{Client: fakeAPI{client}, Service: strings.Repeat("a", 64)},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if len(client.Actions()) != 0 {
		t.Errorf("New called the API: %v", client.Actions())
	}
}

func TestCompute(t *testing.T) {
	https := []discoveryv1.EndpointPort{port("metrics", 9000), port("https", 6443)}
	udp := port("https", 53)
	udp.Protocol = ptr(corev1.ProtocolUDP)
	noProto := discoveryv1.EndpointPort{Name: ptr("https"), Port: ptr(int32(6444))}
	v4 := discoveryv1.AddressTypeIPv4
	v6 := discoveryv1.AddressTypeIPv6
	for _, tc := range []struct {
		name     string
		cfg      Config
		slices   []*discoveryv1.EndpointSlice
		want     []string
		wantNone bool
	}{{
		name: "conditions",
		slices: []*discoveryv1.EndpointSlice{slice("default", "a", "kubernetes", v4, https,
			ep(ptr(true), nil, "192.0.2.1"),
			ep(nil, nil, "192.0.2.2"),             // nil ready means ready
			ep(ptr(false), nil, "192.0.2.3"),      // not ready
			ep(nil, ptr(true), "192.0.2.4"),       // terminating
			ep(ptr(true), ptr(true), "192.0.2.5"), // terminating though ready
			ep(ptr(true), ptr(false), "192.0.2.6"),
		)},
		want: []string{"192.0.2.1:6443", "192.0.2.2:6443", "192.0.2.6:6443"},
	}, {
		name: "multiple slices, both families, sorted and de-duplicated",
		slices: []*discoveryv1.EndpointSlice{
			slice("default", "b", "kubernetes", v6, https, ep(nil, nil, "2001:db8::2", "2001:db8::1")),
			slice("default", "a", "kubernetes", v4, https, ep(nil, nil, "198.51.100.7"), ep(nil, nil, "192.0.2.1")),
			slice("default", "c", "kubernetes", v4, https, ep(nil, nil, "192.0.2.1")),
		},
		want: []string{"192.0.2.1:6443", "198.51.100.7:6443", "[2001:db8::1]:6443", "[2001:db8::2]:6443"},
	}, {
		name: "FQDN, wrong family, bad addresses, other services and namespaces",
		slices: []*discoveryv1.EndpointSlice{
			slice("default", "a", "kubernetes", discoveryv1.AddressTypeFQDN, https, ep(nil, nil, "api.example.com")),
			slice("default", "b", "kubernetes", v4, https, ep(nil, nil, "2001:db8::1", "not-an-ip", "0.0.0.0", "192.0.2.9")),
			slice("default", "c", "kubernetes", v6, https, ep(nil, nil, "192.0.2.1", "fe80::1%eth0", "::")),
			slice("default", "d", "other", v4, https, ep(nil, nil, "203.0.113.1")),
			slice("kube-system", "e", "kubernetes", v4, https, ep(nil, nil, "203.0.113.2")),
		},
		want: []string{"192.0.2.9:6443"},
	}, {
		name: "port by name, per slice",
		slices: []*discoveryv1.EndpointSlice{
			slice("default", "a", "kubernetes", v4, []discoveryv1.EndpointPort{port("https", 7000)}, ep(nil, nil, "192.0.2.1")),
			slice("default", "b", "kubernetes", v4, []discoveryv1.EndpointPort{port("http", 80)}, ep(nil, nil, "192.0.2.2")),
			slice("default", "c", "kubernetes", v4, []discoveryv1.EndpointPort{udp}, ep(nil, nil, "192.0.2.3")),
			slice("default", "d", "kubernetes", v4, []discoveryv1.EndpointPort{noProto}, ep(nil, nil, "192.0.2.4")),
			slice("default", "e", "kubernetes", v4, nil, ep(nil, nil, "192.0.2.5")),
		},
		want: []string{"192.0.2.1:7000", "192.0.2.4:6444"},
	}, {
		name: "other port name",
		cfg:  Config{PortName: "metrics"},
		slices: []*discoveryv1.EndpointSlice{
			slice("default", "a", "kubernetes", v4, https, ep(nil, nil, "192.0.2.1")),
		},
		want: []string{"192.0.2.1:9000"},
	}, {
		name: "port override needs no named port",
		cfg:  Config{Port: 8132},
		slices: []*discoveryv1.EndpointSlice{
			slice("default", "a", "kubernetes", v4, https, ep(nil, nil, "192.0.2.1")),
			slice("default", "b", "kubernetes", v4, nil, ep(nil, nil, "192.0.2.2")),
			slice("default", "c", "kubernetes", v6, https, ep(nil, nil, "2001:db8::1")),
		},
		want: []string{"192.0.2.1:8132", "192.0.2.2:8132", "[2001:db8::1]:8132"},
	}, {
		name: "other service",
		cfg:  Config{Namespace: "lb", Service: "api"},
		slices: []*discoveryv1.EndpointSlice{
			slice("default", "a", "kubernetes", v4, https, ep(nil, nil, "192.0.2.1")),
			slice("lb", "b", "api", v4, https, ep(nil, nil, "192.0.2.2")),
		},
		want: []string{"192.0.2.2:6443"},
	}, {
		name:     "nothing ready",
		slices:   []*discoveryv1.EndpointSlice{slice("default", "a", "kubernetes", v4, https, ep(ptr(false), nil, "192.0.2.1"))},
		wantNone: true,
	}, {
		name:     "no slices",
		wantNone: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Client = fakeAPI{fake.NewClientset()}
			d, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			// What Discovery stores: the API's JSON, decoded.
			var in []*storedSlice
			for _, o := range tc.slices {
				in = append(in, stored(t, o))
			}
			got := d.compute(in)
			if tc.wantNone {
				if len(got) != 0 {
					t.Errorf("compute = %v, want nothing", got)
				}
				return
			}
			if want := aps(tc.want...); !slices.Equal(got, want) {
				t.Errorf("compute = %v, want %v", got, want)
			}
		})
	}
}

func TestDecodeSlice(t *testing.T) {
	s := apiSlice("kubernetes", discoveryv1.AddressTypeIPv4, "192.0.2.1")
	s.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kube-apiserver"}}
	s.Annotations = map[string]string{"big": strings.Repeat("x", 1000)}
	s.Endpoints[0].NodeName = ptr("node-1")
	s.Endpoints[0].TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: "x"}
	s.ResourceVersion = "42"
	ts := stored(t, s)
	if ts.decodeErr != "" {
		t.Errorf("decodeErr %q", ts.decodeErr)
	}
	m := ts.Metadata
	if m.Name != "kubernetes" || m.Namespace != "default" || m.ResourceVersion != "42" ||
		m.Labels[discoveryv1.LabelServiceName] != "kubernetes" || ts.AddressType != string(s.AddressType) ||
		!slices.Equal(ts.Endpoints[0].Addresses, s.Endpoints[0].Addresses) || len(ts.Ports) != 1 ||
		*ts.Ports[0].Name != "https" || *ts.Ports[0].Port != 6443 || *ts.Ports[0].Protocol != "TCP" ||
		!*ts.Endpoints[0].Conditions.Ready || ts.Endpoints[0].Conditions.Terminating != nil {
		t.Errorf("decoded %+v from %+v", ts, s)
	}
	for _, bad := range []string{`"not a slice"`, `{"metadata": "x"}`, `{"metadata": {"namespace": "default"}}`, `{`} {
		if got, err := decodeSlice([]byte(bad)); err == nil {
			t.Errorf("decodeSlice(%s) = %+v", bad, got)
		}
	}
}

func TestDiscoveryEvents(t *testing.T) {
	h := start(t, Config{}, true,
		apiSlice("kubernetes", discoveryv1.AddressTypeIPv4, "192.0.2.2", "192.0.2.1"),
		apiSlice("second", discoveryv1.AddressTypeIPv4, "203.0.113.1"),
	)
	h.expect("192.0.2.1:6443", "192.0.2.2:6443", "203.0.113.1:6443")

	// An endpoint stops being ready.
	s := apiSlice("kubernetes", discoveryv1.AddressTypeIPv4, "192.0.2.2", "192.0.2.1")
	s.Endpoints[0].Conditions.Ready = ptr(false)
	h.update(s)
	h.expect("192.0.2.1:6443", "203.0.113.1:6443")

	// It comes back with ready unset, and another is terminating.
	s.Endpoints[0].Conditions.Ready = nil
	s.Endpoints[1].Conditions.Terminating = ptr(true)
	h.update(s)
	h.expect("192.0.2.2:6443", "203.0.113.1:6443")

	// An IPv6 slice is added.
	h.create(apiSlice("kubernetes-v6", discoveryv1.AddressTypeIPv6, "2001:db8::10"))
	h.expect("192.0.2.2:6443", "203.0.113.1:6443", "[2001:db8::10]:6443")

	// Slices of other services and other namespaces change nothing; the
	// next change shows they were not merged.
	h.create(slice("default", "other", "other", discoveryv1.AddressTypeIPv4,
		[]discoveryv1.EndpointPort{port("https", 443)}, ep(nil, nil, "198.51.100.1")))
	h.create(slice("kube-system", "kubernetes", "kubernetes", discoveryv1.AddressTypeIPv4,
		[]discoveryv1.EndpointPort{port("https", 443)}, ep(nil, nil, "198.51.100.2")))
	h.delete("default", "second")
	h.expect("192.0.2.2:6443", "[2001:db8::10]:6443")

	// An update that changes nothing calls no OnChange: the next call
	// is the following real change.
	s2 := apiSlice("kubernetes", discoveryv1.AddressTypeIPv4, "192.0.2.2", "192.0.2.1")
	s2.Endpoints[1].Conditions.Terminating = ptr(true)
	s2.Annotations = map[string]string{"touched": "yes"}
	h.update(s2)
	h.delete("default", "kubernetes-v6")
	h.expect("192.0.2.2:6443")
}

func TestDiscoveryRefusesEmpty(t *testing.T) {
	const refusal = "refusing to apply an empty API server list"
	// No slices at first: nothing is applied, and the refusal is logged.
	h := start(t, Config{}, true)
	h.waitLog(refusal, 1)
	if b := h.d.Backends(); b != nil {
		t.Errorf("Backends() = %v, want nil", b)
	}
	h.create(apiSlice("kubernetes", discoveryv1.AddressTypeIPv4, "192.0.2.1"))
	h.expect("192.0.2.1:6443")

	// Every endpoint becomes unready: the list stays.
	s := apiSlice("kubernetes", discoveryv1.AddressTypeIPv4, "192.0.2.1")
	s.Endpoints[0].Conditions.Ready = ptr(false)
	h.update(s)
	h.waitLog(refusal, 2)
	// The slice goes away: the list stays.
	h.delete("default", "kubernetes")
	h.waitLog(refusal, 3)
	if b := h.d.Backends(); !slices.Equal(b, aps("192.0.2.1:6443")) {
		t.Errorf("Backends() = %v after an empty list", b)
	}
	// No OnChange was called for the empty lists: the next is this one.
	h.create(apiSlice("kubernetes", discoveryv1.AddressTypeIPv4, "192.0.2.5"))
	h.expect("192.0.2.5:6443")
}

func TestDiscoveryPortOverride(t *testing.T) {
	s := apiSlice("kubernetes", discoveryv1.AddressTypeIPv4, "192.0.2.1")
	s.Ports = nil
	h := start(t, Config{Port: 8132}, true, s)
	h.expect("192.0.2.1:8132")
	h.create(apiSlice("kubernetes-v6", discoveryv1.AddressTypeIPv6, "2001:db8::1"))
	h.expect("192.0.2.1:8132", "[2001:db8::1]:8132")
}

func TestDiscoveryCache(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "apiservers.json")
	h := start(t, Config{CacheFile: file}, true,
		apiSlice("kubernetes", discoveryv1.AddressTypeIPv4, "192.0.2.1", "192.0.2.2"))
	h.expect("192.0.2.1:6443", "192.0.2.2:6443")
	waitCache(t, file, aps("192.0.2.1:6443", "192.0.2.2:6443"))
	h.create(apiSlice("kubernetes-v6", discoveryv1.AddressTypeIPv6, "2001:db8::1"))
	h.expect("192.0.2.1:6443", "192.0.2.2:6443", "[2001:db8::1]:6443")
	waitCache(t, file, aps("192.0.2.1:6443", "192.0.2.2:6443", "[2001:db8::1]:6443"))
	h.delete("default", "kubernetes")
	h.expect("[2001:db8::1]:6443")
	waitCache(t, file, aps("[2001:db8::1]:6443"))
	// An empty list is not written either.
	h.delete("default", "kubernetes-v6")
	h.waitLog("refusing to apply an empty API server list", 1)
	h.stop()
	waitCache(t, file, aps("[2001:db8::1]:6443"))

	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("cache mode %v, want 0600", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

// waitCache waits (nlbtest.Eventually) until the cache file holds want:
// Run writes it after OnChange returns.
func waitCache(t *testing.T, file string, want []netip.AddrPort) {
	t.Helper()
	nlbtest.Eventually(t, wait, "the cache", func() error {
		got, err := LoadCache(file)
		if err == nil && slices.Equal(got, want) {
			return nil
		}
		return fmt.Errorf("cache holds %v (%v), want %v", got, err, want)
	})
}

// failingLists makes the first n lists of h's client fail (all if n < 0),
// and returns how many were made.
func failingLists(client *fake.Clientset, n int32) *atomic.Int32 {
	var lists atomic.Int32
	client.PrependReactor("list", "endpointslices", func(clienttesting.Action) (bool, runtime.Object, error) {
		if c := lists.Add(1); n < 0 || c <= n {
			return true, nil, errors.New("connection refused (test)")
		}
		return false, nil, nil
	})
	return &lists
}

func TestDiscoveryRestartFromCacheWhileAPIDown(t *testing.T) {
	file := filepath.Join(t.TempDir(), "apiservers.json")
	if err := writeCache(file, aps("192.0.2.1:6443", "[2001:db8::1]:6443")); err != nil {
		t.Fatal(err)
	}
	ignore := goleak.IgnoreCurrent()
	client := fake.NewClientset(apiSlice("kubernetes", discoveryv1.AddressTypeIPv4, "192.0.2.7"))
	lists := failingLists(client, -1)
	changes := make(chan []netip.AddrPort, 10)
	logs := &syncBuffer{}
	d, err := New(Config{
		Client:    fakeAPI{client},
		CacheFile: file,
		Logger:    slog.New(slog.NewTextHandler(logs, nil)),
		OnChange:  func(b []netip.AddrPort) { changes <- b },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case got := <-changes:
		if want := aps("192.0.2.1:6443", "[2001:db8::1]:6443"); !slices.Equal(got, want) {
			t.Errorf("OnChange(%v) from the cache, want %v", got, want)
		}
	case <-time.After(wait):
		t.Fatal("the cached list was not applied")
	}
	// Run keeps retrying and does not return.
	nlbtest.Eventually(t, wait, "a retry", func() error {
		select {
		case err := <-done:
			return nlbtest.Stop(fmt.Errorf("Run returned %v on API errors", err))
		default:
		}
		if lists.Load() < 2 || !strings.Contains(logs.String(), "retrying") {
			return fmt.Errorf("no retry after %d lists; logs:\n%s", lists.Load(), logs)
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
	goleak.VerifyNone(t, ignore)
	if got := d.Backends(); !slices.Equal(got, aps("192.0.2.1:6443", "[2001:db8::1]:6443")) {
		t.Errorf("Backends() = %v", got)
	}
	if err := d.Run(context.Background()); err == nil {
		t.Error("a second Run succeeded")
	}
}

func TestDiscoveryRecoversFromListErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "apiservers.json")
	if err := writeCache(file, aps("192.0.2.1:6443")); err != nil {
		t.Fatal(err)
	}
	ignore := goleak.IgnoreCurrent()
	client := fake.NewClientset(apiSlice("kubernetes", discoveryv1.AddressTypeIPv4, "192.0.2.7"))
	failingLists(client, 1)
	changes := make(chan []netip.AddrPort, 10)
	d, err := New(Config{Client: fakeAPI{client}, CacheFile: file, OnChange: func(b []netip.AddrPort) { changes <- b }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	for i, want := range [][]netip.AddrPort{aps("192.0.2.1:6443"), aps("192.0.2.7:6443")} {
		select {
		case got := <-changes:
			if !slices.Equal(got, want) {
				t.Errorf("OnChange %d = %v, want %v", i, got, want)
			}
		case <-time.After(wait):
			t.Fatalf("OnChange %d missing", i)
		}
	}
	waitCache(t, file, aps("192.0.2.7:6443"))
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	goleak.VerifyNone(t, ignore)
}

func TestDiscoveryBadCacheIgnored(t *testing.T) {
	file := filepath.Join(t.TempDir(), "apiservers.json")
	if err := os.WriteFile(file, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := start(t, Config{CacheFile: file}, true, apiSlice("kubernetes", discoveryv1.AddressTypeIPv4, "192.0.2.1"))
	h.expect("192.0.2.1:6443")
	waitCache(t, file, aps("192.0.2.1:6443"))
	if !strings.Contains(h.logs.String(), "no cached API server list") {
		t.Errorf("bad cache not logged:\n%s", h.logs)
	}
}

func TestDiscoveryCacheWriteFailure(t *testing.T) {
	// A directory that does not exist: the write fails, is logged, and the
	// discovery goes on.
	file := filepath.Join(t.TempDir(), "missing", "apiservers.json")
	h := start(t, Config{CacheFile: file}, true, apiSlice("kubernetes", discoveryv1.AddressTypeIPv4, "192.0.2.1"))
	h.expect("192.0.2.1:6443")
	h.waitLog("cannot write the API server cache", 1)
	h.create(apiSlice("kubernetes-v6", discoveryv1.AddressTypeIPv6, "2001:db8::1"))
	h.expect("192.0.2.1:6443", "[2001:db8::1]:6443")
}

func TestRunCancelledBeforeStart(t *testing.T) {
	d, err := New(Config{Client: fakeAPI{fake.NewClientset()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Run(ctx); err != nil {
		t.Errorf("Run(cancelled) = %v", err)
	}
}

// ExampleDiscovery shows how cmd/nlb feeds a proxy.
func ExampleDiscovery() {
	client := fake.NewClientset(apiSlice("kubernetes", discoveryv1.AddressTypeIPv4, "192.0.2.1", "192.0.2.2"))
	got := make(chan []string, 1)
	d, err := New(Config{
		Client: fakeAPI{client},
		Port:   6443, // dial spec.api.port, like k0s's CPLB
		OnChange: func(b []netip.AddrPort) {
			got <- Addrs(b, 0) // p.SetBackends(Addrs(b, 0)) with an *lb.Proxy p
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	fmt.Println(<-got)
	cancel()
	<-done
	// Output: [192.0.2.1:6443 192.0.2.2:6443]
}

func TestDiscoveryCachePortOverride(t *testing.T) {
	file := filepath.Join(t.TempDir(), "apiservers.json")
	if err := writeCache(file, aps("192.0.2.1:6443", "192.0.2.1:6444")); err != nil {
		t.Fatal(err)
	}
	// The API has no slices: the cached list, with the configured port,
	// stays.
	h := start(t, Config{CacheFile: file, Port: 8132}, true)
	h.expect("192.0.2.1:8132")
	h.waitLog("refusing to apply an empty API server list", 1)
	if b := h.d.Backends(); !slices.Equal(b, aps("192.0.2.1:8132")) {
		t.Errorf("Backends() = %v", b)
	}
}

// TestDiscoveryFirstAPIListAlwaysApplied: when the API's first list equals
// the cached one, OnChange still hears it, so a caller that started from the
// cache plus other addresses (nlb client adds the kubeconfig's server)
// learns that the list is now authoritative and drops the extras.
func TestDiscoveryFirstAPIListAlwaysApplied(t *testing.T) {
	file := filepath.Join(t.TempDir(), "apiservers.json")
	if err := writeCache(file, aps("192.0.2.7:6443")); err != nil {
		t.Fatal(err)
	}
	ignore := goleak.IgnoreCurrent()
	client := fake.NewClientset(apiSlice("kubernetes", discoveryv1.AddressTypeIPv4, "192.0.2.7"))
	changes := make(chan []netip.AddrPort, 10)
	d, err := New(Config{Client: fakeAPI{client}, CacheFile: file, OnChange: func(b []netip.AddrPort) { changes <- b }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	for i := range 2 { // the cache, then the same list from the API
		select {
		case got := <-changes:
			if want := aps("192.0.2.7:6443"); !slices.Equal(got, want) {
				t.Errorf("OnChange %d = %v, want %v", i, got, want)
			}
		case <-time.After(wait):
			t.Fatalf("OnChange %d missing", i)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	goleak.VerifyNone(t, ignore)
}

// TestComputeUndecodableSlice: a slice whose JSON does not fit the
// EndpointSlice schema adds no endpoints, is logged by name, and does not
// hide the good slices beside it.
func TestComputeUndecodableSlice(t *testing.T) {
	var logs strings.Builder
	d, err := New(Config{Client: fakeAPI{fake.NewClientset()}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	badT, err := decodeSlice([]byte(`{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
		"metadata": {"name": "broken", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
		"addressType": "IPv4", "endpoints": "not a list"}`))
	if err != nil {
		t.Fatal(err)
	}
	if badT.decodeErr == "" || badT.Metadata.Name != "broken" || badT.Endpoints != nil {
		t.Errorf("decodeSlice(broken) = %+v", badT)
	}
	goodT := stored(t, apiSlice("kubernetes", discoveryv1.AddressTypeIPv4, "192.0.2.1"))
	if got, want := d.compute([]*storedSlice{badT, goodT}), aps("192.0.2.1:6443"); !slices.Equal(got, want) {
		t.Errorf("compute = %v, want %v", got, want)
	}
	if !strings.Contains(logs.String(), "slice=broken") {
		t.Errorf("undecodable slice not logged by name: %q", logs.String())
	}
}
