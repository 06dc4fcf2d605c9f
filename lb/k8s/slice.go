package k8s

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The subset of discovery.k8s.io/v1 EndpointSlice that discovery reads,
// with the API's JSON names. Decoding into these instead of
// k8s.io/api/discovery/v1 keeps the API type packages (and core/v1, which
// discovery/v1 imports) out of the binary: nlb runs on every worker, where
// their size and start-up registration are most of its memory.
type endpointSlice struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	AddressType       string         `json:"addressType"`
	Endpoints         []endpoint     `json:"endpoints"`
	Ports             []endpointPort `json:"ports"`
}

// storedSlice is what the informer keeps: the decoded slice, or an empty
// one with the reason the API's object did not decode (its endpoints are
// then ignored). It is separate from endpointSlice, the decoding target,
// because the unstructured converter refuses unexported fields.
type storedSlice struct {
	endpointSlice
	decodeErr string
}

type endpoint struct {
	Addresses  []string           `json:"addresses"`
	Conditions endpointConditions `json:"conditions,omitempty"`
}

type endpointConditions struct {
	Ready       *bool `json:"ready,omitempty"`
	Terminating *bool `json:"terminating,omitempty"`
}

type endpointPort struct {
	Name     *string `json:"name,omitempty"`
	Protocol *string `json:"protocol,omitempty"`
	Port     *int32  `json:"port,omitempty"`
}

// Names from discovery.k8s.io/v1.
const (
	labelServiceName = "kubernetes.io/service-name"
	addressTypeIPv4  = "IPv4"
	addressTypeIPv6  = "IPv6"
	protocolTCP      = "TCP"
)

// endpointSlicesResource is discovery.k8s.io/v1 endpointslices.
func endpointSlicesResource() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}
}
