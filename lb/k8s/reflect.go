package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"
)

// Timings of the list and watch loop, as client-go's reflector.
const (
	// backoffInitial is the wait after a failure, doubled after each
	// further failure up to backoffMax, with up to as much again of jitter;
	// backoffReset without failure starts over from backoffInitial.
	backoffInitial = 800 * time.Millisecond
	backoffMax     = 30 * time.Second
	backoffReset   = 2 * time.Minute
	// minWatchTimeout is the shortest server-side watch timeout asked for;
	// each watch asks for between it and twice it, so that watches of many
	// nodes do not end together.
	minWatchTimeout = 5 * time.Minute
	// watchGrace is how long past its server-side timeout a watch may run
	// before the client ends it (a server that never closes it).
	watchGrace = 30 * time.Second
	// shortWatch: a watch the server ends this soon without an event is a
	// failure, not a timeout (the reflector's "very short watch").
	shortWatch = time.Second
)

// sliceStore is the reflector's picture of the slices: the API's state as
// of the last list and the events since.
type sliceStore struct {
	mu     sync.Mutex
	slices map[string]*storedSlice // by namespace/name
	synced bool                    // a list has been stored
}

func newSliceStore() *sliceStore {
	return &sliceStore{slices: map[string]*storedSlice{}}
}

func storeKey(m *objectMeta) string { return m.Namespace + "/" + m.Name }

// replace stores a list's slices in place of everything.
func (s *sliceStore) replace(items []*storedSlice) {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.slices)
	for _, it := range items {
		s.slices[storeKey(&it.Metadata)] = it
	}
	s.synced = true
}

func (s *sliceStore) put(it *storedSlice) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slices[storeKey(&it.Metadata)] = it
}

func (s *sliceStore) remove(m *objectMeta) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.slices, storeKey(m))
}

// list returns the stored slices and whether a list has been stored.
func (s *sliceStore) list() ([]*storedSlice, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*storedSlice, 0, len(s.slices))
	for _, it := range s.slices {
		out = append(out, it)
	}
	return out, s.synced
}

// backoff is the reflector's exponential backoff.
type backoff struct {
	cur  time.Duration
	last time.Time
}

// next returns how long to wait after a failure at now.
func (b *backoff) next(now time.Time) time.Duration {
	if b.cur == 0 || now.Sub(b.last) > backoffReset {
		b.cur = backoffInitial
	} else {
		b.cur = min(2*b.cur, backoffMax)
	}
	b.last = now
	return b.cur + time.Duration(rand.Float64()*float64(b.cur))
}

// reflect keeps st in step with the API until ctx ends: it lists the
// service's slices, then watches from the list's resource version, calling
// changed after every change; after a failure it waits (backoff) and
// starts over with a list.
func (d *Discovery) reflect(ctx context.Context, st *sliceStore, changed func()) {
	r := &reflector{d: d, api: d.cfg.Client.EndpointSlices(d.cfg.Namespace), st: st, changed: changed}
	var b backoff
	for {
		err := r.listAndWatch(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := b.next(time.Now())
		if isExpired(err) {
			d.log.Info("API server endpoints: resource version expired; listing again", "err", err, "retry_in", wait.Round(time.Millisecond))
		} else {
			d.log.Warn("watching API server endpoints failed; retrying", "namespace", d.cfg.Namespace,
				"service", d.cfg.Service, "err", err, "retry_in", wait.Round(time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// reflector is the state of reflect.
type reflector struct {
	d       *Discovery
	api     EndpointSlices
	st      *sliceStore
	changed func()
	// rv is the resource version the store is at; "" before a list.
	rv string
	// expired says that rv is too old to list or watch from.
	expired bool
}

// listAndWatch lists, then watches until a watch fails. It returns only
// with an error (or when ctx ends).
func (r *reflector) listAndWatch(ctx context.Context) error {
	// The first list may come from the API server's cache ("0"); after
	// that, from the last resource version on; after an expiry, the
	// latest state ("").
	rv := r.rv
	switch {
	case r.expired:
		rv = ""
	case rv == "":
		rv = "0"
	}
	l, err := r.api.List(ctx, ListOptions{LabelSelector: r.d.selector, ResourceVersion: rv})
	if err != nil && rv != "" && isExpired(err) {
		l, err = r.api.List(ctx, ListOptions{LabelSelector: r.d.selector})
	}
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	items := make([]*storedSlice, 0, len(l.Items))
	for _, raw := range l.Items {
		s, err := decodeSlice(raw)
		if err != nil {
			r.d.log.Warn("ignoring an endpoint slice that does not decode", "err", err)
			continue
		}
		items = append(items, s)
	}
	r.st.replace(items)
	r.rv, r.expired = l.ResourceVersion, false
	r.changed()

	for {
		timeout := time.Duration(float64(minWatchTimeout) * (1 + rand.Float64())).Truncate(time.Second)
		start := time.Now()
		events, err := r.watch(ctx, timeout)
		if err != nil {
			if isExpired(err) {
				r.expired = true
			}
			return fmt.Errorf("watch: %w", err)
		}
		if events == 0 && time.Since(start) < shortWatch {
			return errors.New("watch: the server ended it at once without an event")
		}
	}
}

// watch follows one watch until the server ends it (nil error) or it fails,
// and returns how many events it had.
func (r *reflector) watch(ctx context.Context, timeout time.Duration) (int, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout+watchGrace)
	defer cancel()
	w, err := r.api.Watch(wctx, ListOptions{LabelSelector: r.d.selector, ResourceVersion: r.rv, TimeoutSeconds: int(timeout / time.Second)})
	if err != nil {
		return 0, err
	}
	defer w.Close()
	for events := 0; ; events++ {
		e, err := w.Next()
		switch {
		case errors.Is(err, io.EOF):
			return events, nil // the server's timeout
		case err != nil && wctx.Err() != nil && ctx.Err() == nil:
			return events, nil // past the timeout and grace: the client's
		case err != nil:
			return events, err
		}
		switch e.Type {
		case EventAdded, EventModified, EventDeleted:
			s, err := decodeSlice(e.Object)
			if err != nil {
				return events, fmt.Errorf("%s event: %w", e.Type, err)
			}
			if e.Type == EventDeleted {
				r.st.remove(&s.Metadata)
			} else {
				r.st.put(s)
			}
			if s.Metadata.ResourceVersion != "" {
				r.rv = s.Metadata.ResourceVersion
			}
			r.changed()
		case EventBookmark:
			var b struct {
				Metadata objectMeta `json:"metadata"`
			}
			if err := json.Unmarshal(e.Object, &b); err != nil {
				return events, fmt.Errorf("bookmark: %w", err)
			}
			if b.Metadata.ResourceVersion != "" {
				r.rv = b.Metadata.ResourceVersion
			}
		case EventError:
			se := &StatusError{}
			if err := json.Unmarshal(e.Object, se); err != nil || se.Code == 0 && se.Message == "" {
				return events, fmt.Errorf("error event: %s", e.Object)
			}
			return events, se
		default:
			return events, fmt.Errorf("unknown event type %q", e.Type)
		}
	}
}
