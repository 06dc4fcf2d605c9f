package k8s

import (
	"context"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	discoveryv1client "k8s.io/client-go/kubernetes/typed/discovery/v1"
)

// fakeAPI adapts a fake clientset to API for tests: the typed objects the
// tests create reach Discovery as the unstructured JSON the dynamic client
// hands it in production.
type fakeAPI struct{ cs *fake.Clientset }

func (f fakeAPI) EndpointSlices(namespace string) EndpointSlices {
	return fakeSlices{f.cs.DiscoveryV1().EndpointSlices(namespace)}
}

type fakeSlices struct {
	c discoveryv1client.EndpointSliceInterface
}

func (f fakeSlices) List(ctx context.Context, opts metav1.ListOptions) (*unstructured.UnstructuredList, error) {
	l, err := f.c.List(ctx, opts)
	if err != nil {
		return nil, err
	}
	out := &unstructured.UnstructuredList{Object: map[string]any{}}
	out.SetAPIVersion("discovery.k8s.io/v1")
	out.SetKind("EndpointSliceList")
	out.SetResourceVersion(l.ResourceVersion)
	for i := range l.Items {
		u, err := unstructuredOf(&l.Items[i])
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, *u)
	}
	return out, nil
}

func (f fakeSlices) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	w, err := f.c.Watch(ctx, opts)
	if err != nil {
		return nil, err
	}
	return watch.Filter(w, func(e watch.Event) (watch.Event, bool) {
		if s, ok := e.Object.(*discoveryv1.EndpointSlice); ok {
			if u, err := unstructuredOf(s); err == nil {
				e.Object = u
			}
		}
		return e, true
	}), nil
}

func unstructuredOf(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// toUnstructured converts a typed test object, failing the test on error.
func toUnstructured(t *testing.T, obj any) any {
	t.Helper()
	o, ok := obj.(runtime.Object)
	if !ok {
		return obj
	}
	u, err := unstructuredOf(o)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
