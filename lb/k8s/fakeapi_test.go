package k8s

import "k8s.io/client-go/kubernetes/fake"

// fakeAPI adapts a fake clientset to API for tests; production code uses
// NewAPI, which keeps the clientset out of the binary.
type fakeAPI struct{ cs *fake.Clientset }

func (f fakeAPI) EndpointSlices(namespace string) EndpointSlices {
	return f.cs.DiscoveryV1().EndpointSlices(namespace)
}
