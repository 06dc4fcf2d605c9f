package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// scriptAPI is an EndpointSlices whose lists and watches the test answers
// one by one, recording their options.
type scriptAPI struct {
	t       *testing.T
	lists   chan listCall
	watches chan watchCall
}

type listCall struct {
	opts  ListOptions
	reply chan listReply
}

type listReply struct {
	l   *SliceList
	err error
}

type watchCall struct {
	opts ListOptions
	w    *scriptWatcher
}

func newScriptAPI(t *testing.T) *scriptAPI {
	return &scriptAPI{t: t, lists: make(chan listCall), watches: make(chan watchCall)}
}

func (s *scriptAPI) EndpointSlices(namespace string) EndpointSlices {
	if namespace != "default" {
		s.t.Errorf("namespace %q", namespace)
	}
	return s
}

func (s *scriptAPI) List(ctx context.Context, opts ListOptions) (*SliceList, error) {
	c := listCall{opts: opts, reply: make(chan listReply, 1)}
	select {
	case s.lists <- c:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-c.reply:
		return r.l, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *scriptAPI) Watch(ctx context.Context, opts ListOptions) (Watcher, error) {
	w := &scriptWatcher{ctx: ctx, events: make(chan Event), closed: make(chan struct{})}
	select {
	case s.watches <- watchCall{opts: opts, w: w}:
		return w, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// expectList waits for the next list, checks its resource version and
// answers it.
func (s *scriptAPI) expectList(rv string, reply *SliceList, err error) {
	s.t.Helper()
	select {
	case c := <-s.lists:
		if c.opts.ResourceVersion != rv || c.opts.LabelSelector != "kubernetes.io/service-name=kubernetes" {
			s.t.Errorf("list options %+v, want resource version %q", c.opts, rv)
		}
		c.reply <- listReply{reply, err}
	case w := <-s.watches:
		s.t.Fatalf("watch %+v, want a list", w.opts)
	case <-time.After(wait):
		s.t.Fatal("no list")
	}
}

// expectWatch waits for the next watch and checks its resource version.
func (s *scriptAPI) expectWatch(rv string) *scriptWatcher {
	s.t.Helper()
	select {
	case c := <-s.watches:
		if c.opts.ResourceVersion != rv || c.opts.TimeoutSeconds < 300 || c.opts.TimeoutSeconds > 600 {
			s.t.Errorf("watch options %+v, want resource version %q", c.opts, rv)
		}
		return c.w
	case c := <-s.lists:
		s.t.Fatalf("list %+v, want a watch", c.opts)
	case <-time.After(wait):
		s.t.Fatal("no watch")
	}
	return nil
}

type scriptWatcher struct {
	ctx    context.Context
	events chan Event
	once   sync.Once
	closed chan struct{}
}

func (w *scriptWatcher) Next() (Event, error) {
	select {
	case e, ok := <-w.events:
		if !ok {
			return Event{}, io.EOF
		}
		return e, nil
	case <-w.closed:
		return Event{}, errors.New("closed")
	case <-w.ctx.Done():
		return Event{}, w.ctx.Err()
	}
}

func (w *scriptWatcher) Close() error {
	w.once.Do(func() { close(w.closed) })
	return nil
}

// send delivers an event of type typ with a JSON object.
func (w *scriptWatcher) send(t *testing.T, typ, object string) {
	t.Helper()
	select {
	case w.events <- Event{Type: typ, Object: json.RawMessage(object)}:
	case <-time.After(wait):
		t.Fatalf("%s event not taken", typ)
	}
}

// rawSlice is default/kubernetes at rv with one ready IPv4 endpoint per
// address, port https/6443.
func rawSlice(name, rv string, addrs ...string) string {
	return fmt.Sprintf(`{"metadata":{"name":%q,"namespace":"default","resourceVersion":%q,"labels":{"kubernetes.io/service-name":"kubernetes"}},
		"addressType":"IPv4","ports":[{"name":"https","port":6443,"protocol":"TCP"}],"endpoints":[{"addresses":%s}]}`,
		name, rv, mustJSON(addrs))
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestReflector walks the list and watch loop through the API's protocol:
// the first list from the cache ("0"), watches from the last resource
// version seen (events and bookmarks), a new watch without a list when the
// server ends one, a list from the latest state ("") after a 410 Expired,
// and a list from the last version after a broken watch.
func TestReflector(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	api := newScriptAPI(t)
	changes := make(chan []netip.AddrPort, 10)
	logs := &syncBuffer{}
	d, err := New(Config{Client: api, Logger: slog.New(slog.NewTextHandler(logs, nil)), OnChange: func(b []netip.AddrPort) { changes <- b }})
	if err != nil {
		t.Fatal(err)
	}
	expect := func(want ...string) {
		t.Helper()
		select {
		case got := <-changes:
			if !slices.Equal(got, aps(want...)) {
				t.Fatalf("OnChange(%v), want %v", got, want)
			}
		case <-time.After(wait):
			t.Fatalf("no OnChange; logs:\n%s", logs)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	api.expectList("0", &SliceList{ResourceVersion: "10", Items: []json.RawMessage{json.RawMessage(rawSlice("a", "10", "192.0.2.1"))}}, nil)
	expect("192.0.2.1:6443")
	w := api.expectWatch("10")
	w.send(t, EventAdded, rawSlice("b", "11", "192.0.2.2"))
	expect("192.0.2.1:6443", "192.0.2.2:6443")
	w.send(t, EventBookmark, `{"metadata":{"resourceVersion":"15"}}`)
	w.send(t, EventDeleted, rawSlice("a", "16", "192.0.2.1"))
	expect("192.0.2.2:6443")
	w.send(t, EventBookmark, `{"metadata":{"resourceVersion":"20"}}`)
	close(w.events) // the server's timeout: watch again from 20, no list

	w = api.expectWatch("20")
	w.send(t, EventError, `{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version: 20 (30)"}`)
	// After the backoff, a list from the latest state.
	api.expectList("", &SliceList{ResourceVersion: "31", Items: []json.RawMessage{json.RawMessage(rawSlice("b", "31", "192.0.2.3"))}}, nil)
	expect("192.0.2.3:6443")
	w = api.expectWatch("31")
	w.send(t, EventModified, `{"metadata":{"name":"b","namespace":"default","resourceVersion":"32","labels":{"kubernetes.io/service-name":"kubernetes"}},"endpoints":7}`)
	// The body does not decode: the slice stays, without endpoints, so
	// the list would be empty: refused.
	waitLogs(t, logs, "refusing to apply an empty API server list", 1)
	w.send(t, "SURPRISE", `{}`)
	// A broken watch: after the backoff, a list from the last version.
	api.expectList("32", &SliceList{ResourceVersion: "40", Items: []json.RawMessage{json.RawMessage(rawSlice("b", "40", "192.0.2.4"))}}, nil)
	expect("192.0.2.4:6443")
	api.expectWatch("40")

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	goleak.VerifyNone(t, ignore)
	for _, want := range []string{"resource version expired", `unknown event type \"SURPRISE\"`, "ignoring an endpoint slice that does not decode"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}

// TestReflectorExpiredList: a list at a resource version the server no
// longer has is repeated at once from the latest state.
func TestReflectorExpiredList(t *testing.T) {
	api := newScriptAPI(t)
	changes := make(chan []netip.AddrPort, 10)
	d, err := New(Config{Client: api, OnChange: func(b []netip.AddrPort) { changes <- b }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := newSliceStore()
	r := &reflector{d: d, api: api, st: st, changed: func() {}, rv: "7"}
	errc := make(chan error, 1)
	go func() { errc <- r.listAndWatch(ctx) }()
	api.expectList("7", nil, &StatusError{Code: 410, Reason: "Expired"})
	api.expectList("", &SliceList{ResourceVersion: "50"}, nil)
	w := api.expectWatch("50")
	w.send(t, EventError, `{"code":500,"message":"boom"}`)
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "boom") || isExpired(err) {
		t.Errorf("listAndWatch = %v", err)
	}
	if _, synced := st.list(); !synced {
		t.Error("not synced after a list")
	}
	// A watch the server ends at once without events is a failure.
	go func() { errc <- r.listAndWatch(ctx) }()
	api.expectList("50", &SliceList{ResourceVersion: "51"}, nil)
	close(api.expectWatch("51").events)
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "at once") {
		t.Errorf("listAndWatch after a short watch = %v", err)
	}
}

func TestBackoff(t *testing.T) {
	var b backoff
	now := time.Now()
	base := backoffInitial
	for i := range 10 {
		d := b.next(now)
		if d < base || d >= 2*base {
			t.Errorf("wait %d = %v, want [%v, %v)", i, d, base, 2*base)
		}
		base = min(2*base, backoffMax)
		now = now.Add(time.Second)
	}
	if d := b.next(now.Add(backoffReset + time.Second)); d >= 2*backoffInitial {
		t.Errorf("wait after a quiet spell = %v, want the initial one", d)
	}
}
