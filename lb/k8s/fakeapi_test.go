package k8s

import (
	"context"
	"encoding/json"
	"io"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	discoveryv1client "k8s.io/client-go/kubernetes/typed/discovery/v1"
)

// fakeAPI adapts a fake clientset to API for tests: the typed objects the
// tests create reach Discovery as the JSON the API server sends.
type fakeAPI struct{ cs *fake.Clientset }

func (f fakeAPI) EndpointSlices(namespace string) EndpointSlices {
	return fakeSlices{f.cs.DiscoveryV1().EndpointSlices(namespace)}
}

type fakeSlices struct {
	c discoveryv1client.EndpointSliceInterface
}

func listOptions(o ListOptions) metav1.ListOptions {
	return metav1.ListOptions{LabelSelector: o.LabelSelector, ResourceVersion: o.ResourceVersion}
}

func (f fakeSlices) List(ctx context.Context, opts ListOptions) (*SliceList, error) {
	l, err := f.c.List(ctx, listOptions(opts))
	if err != nil {
		return nil, err
	}
	out := &SliceList{ResourceVersion: l.ResourceVersion}
	for i := range l.Items {
		raw, err := json.Marshal(&l.Items[i])
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, raw)
	}
	return out, nil
}

func (f fakeSlices) Watch(ctx context.Context, opts ListOptions) (Watcher, error) {
	w, err := f.c.Watch(ctx, listOptions(opts))
	if err != nil {
		return nil, err
	}
	return &fakeWatcher{w: w, ctx: ctx}, nil
}

// fakeWatcher turns a client-go watch into a Watcher.
type fakeWatcher struct {
	w   watch.Interface
	ctx context.Context
}

func (f *fakeWatcher) Next() (Event, error) {
	select {
	case e, ok := <-f.w.ResultChan():
		if !ok {
			return Event{}, io.EOF
		}
		raw, err := json.Marshal(e.Object)
		if err != nil {
			return Event{}, err
		}
		return Event{Type: string(e.Type), Object: raw}, nil
	case <-f.ctx.Done():
		return Event{}, f.ctx.Err()
	}
}

func (f *fakeWatcher) Close() error {
	f.w.Stop()
	return nil
}

// sliceJSON encodes a typed test object as the API would send it.
func sliceJSON(t *testing.T, obj any) []byte {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stored decodes a typed test slice as Discovery stores it.
func stored(t *testing.T, obj any) *storedSlice {
	t.Helper()
	s, err := decodeSlice(sliceJSON(t, obj))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
