package k8s

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// TestNewAPIWire runs Discovery over NewAPI against an HTTP server that
// speaks the API's list and watch wire format: the lean REST client asks for
// the right path and label selector, decodes the list, follows the watch,
// and the addresses reach OnChange.
func TestNewAPIWire(t *testing.T) {
	slice := func(rv string, addrs ...string) discoveryv1.EndpointSlice {
		name, port := "https", int32(6443)
		return discoveryv1.EndpointSlice{
			TypeMeta:    metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
			ObjectMeta:  metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", ResourceVersion: rv, Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: addrs}},
			Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
		}
	}
	var (
		mu        sync.Mutex
		selectors []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		selectors = append(selectors, r.URL.Query().Get("labelSelector"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("watch") != "true" {
			_ = json.NewEncoder(w).Encode(discoveryv1.EndpointSliceList{
				TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSliceList"},
				ListMeta: metav1.ListMeta{ResourceVersion: "1"},
				Items:    []discoveryv1.EndpointSlice{slice("1", "192.0.2.11")},
			})
			return
		}
		// One event, then hold the watch open until the client goes.
		obj, _ := json.Marshal(slice("2", "192.0.2.11", "192.0.2.12"))
		_ = json.NewEncoder(w).Encode(map[string]any{"type": "MODIFIED", "object": json.RawMessage(obj)})
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()

	api, err := NewAPI(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	changes := make(chan []netip.AddrPort, 10)
	d, err := New(Config{Client: api, OnChange: func(b []netip.AddrPort) { changes <- b }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	want := aps("192.0.2.11:6443", "192.0.2.12:6443")
	deadline := time.After(wait)
	for got := []netip.AddrPort(nil); !slices.Equal(got, want); {
		select {
		case got = <-changes:
		case <-deadline:
			t.Fatalf("OnChange never reported %v (last %v)", want, got)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, sel := range selectors {
		if sel != "kubernetes.io/service-name=kubernetes" {
			t.Errorf("labelSelector %q", sel)
		}
	}
}
