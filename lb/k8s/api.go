package k8s

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// API is what Discovery needs from the cluster: the EndpointSlices of a
// namespace. NewAPI builds the production one.
type API interface {
	EndpointSlices(namespace string) EndpointSlices
}

// EndpointSlices lists and watches the EndpointSlices of one namespace as
// unstructured objects. client-go's dynamic ResourceInterface satisfies it.
type EndpointSlices interface {
	List(ctx context.Context, opts metav1.ListOptions) (*unstructured.UnstructuredList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// NewAPI returns an API for the cluster described by rc, built on
// client-go's dynamic client. Discovery decodes the slices into its own
// small types: client-go's typed clients (even the discovery/v1 one) link
// and register every API group of Kubernetes at start-up, tens of megabytes
// of binary and memory that a node-local load balancer on every worker does
// not need. It does no I/O.
func NewAPI(rc *rest.Config) (API, error) {
	if rc == nil {
		return nil, errors.New("k8s: api: no rest config")
	}
	c := rest.CopyConfig(rc)
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	dc, err := dynamic.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("k8s: api: %w", err)
	}
	return dynamicAPI{dc: dc}, nil
}

type dynamicAPI struct{ dc dynamic.Interface }

func (a dynamicAPI) EndpointSlices(namespace string) EndpointSlices {
	return a.dc.Resource(endpointSlicesResource()).Namespace(namespace)
}
