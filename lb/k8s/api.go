package k8s

import (
	"context"
	"errors"
	"fmt"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// API is what Discovery needs from the cluster: the EndpointSlices of a
// namespace. NewAPI builds the production one.
type API interface {
	EndpointSlices(namespace string) EndpointSlices
}

// EndpointSlices lists and watches the EndpointSlices of one namespace.
// client-go's typed EndpointSliceInterface satisfies it, so tests can use
// a fake clientset's DiscoveryV1().EndpointSlices(namespace).
type EndpointSlices interface {
	List(ctx context.Context, opts metav1.ListOptions) (*discoveryv1.EndpointSliceList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// NewAPI returns an API that talks to the cluster described by rc with a
// REST client that knows discovery.k8s.io/v1 alone. client-go's clientset
// (and even its typed discovery/v1 client) registers every API group of
// Kubernetes at start-up: tens of megabytes of binary and memory that a
// node-local load balancer on every worker does not need. It does no I/O.
func NewAPI(rc *rest.Config) (API, error) {
	if rc == nil {
		return nil, errors.New("k8s: api: no rest config")
	}
	sch := runtime.NewScheme()
	// As client-go's own scheme: the unversioned meta types, then the
	// group (whose AddToScheme registers list options and watch events).
	metav1.AddToGroupVersion(sch, schema.GroupVersion{Version: "v1"})
	if err := discoveryv1.AddToScheme(sch); err != nil {
		return nil, fmt.Errorf("k8s: api: scheme: %w", err)
	}
	c := rest.CopyConfig(rc)
	c.APIPath = "/apis"
	c.GroupVersion = &discoveryv1.SchemeGroupVersion
	c.NegotiatedSerializer = serializer.NewCodecFactory(sch).WithoutConversion()
	c.ContentType = runtime.ContentTypeJSON
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	client, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("k8s: api: %w", err)
	}
	return &restAPI{client: client, params: runtime.NewParameterCodec(sch)}, nil
}

type restAPI struct {
	client rest.Interface
	params runtime.ParameterCodec
}

func (a *restAPI) EndpointSlices(namespace string) EndpointSlices {
	return &restSlices{api: a, ns: namespace}
}

type restSlices struct {
	api *restAPI
	ns  string
}

func (s *restSlices) List(ctx context.Context, opts metav1.ListOptions) (*discoveryv1.EndpointSliceList, error) {
	out := &discoveryv1.EndpointSliceList{}
	err := s.api.client.Get().Namespace(s.ns).Resource("endpointslices").
		VersionedParams(&opts, s.api.params).Do(ctx).Into(out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *restSlices) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return s.api.client.Get().Namespace(s.ns).Resource("endpointslices").
		VersionedParams(&opts, s.api.params).Watch(ctx)
}
