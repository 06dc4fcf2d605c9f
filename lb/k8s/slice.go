package k8s

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The subset of discovery.k8s.io/v1 EndpointSlice that discovery reads,
// with the API's JSON names. Decoding the API's JSON straight into these
// with encoding/json keeps k8s.io/api, apimachinery's schemes and
// client-go out of the binary: nlb runs on every worker, where their size
// and start-up registration were most of its memory.
type endpointSlice struct {
	Metadata    objectMeta     `json:"metadata"`
	AddressType string         `json:"addressType"`
	Endpoints   []endpoint     `json:"endpoints"`
	Ports       []endpointPort `json:"ports"`
}

// objectMeta is the part of an object's metadata discovery keeps.
type objectMeta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace"`
	ResourceVersion string            `json:"resourceVersion"`
	Labels          map[string]string `json:"labels"`
}

// storedSlice is what discovery keeps of a slice from the API: the decoded
// slice, or its metadata alone with the reason the rest did not decode (its
// endpoints are then ignored, but a later update or delete still finds it).
type storedSlice struct {
	endpointSlice
	decodeErr string
}

type endpoint struct {
	Addresses  []string           `json:"addresses"`
	Conditions endpointConditions `json:"conditions"`
}

type endpointConditions struct {
	Ready       *bool `json:"ready"`
	Terminating *bool `json:"terminating"`
}

type endpointPort struct {
	Name     *string `json:"name"`
	Protocol *string `json:"protocol"`
	Port     *int32  `json:"port"`
}

// Names from discovery.k8s.io/v1.
const (
	labelServiceName = "kubernetes.io/service-name"
	addressTypeIPv4  = "IPv4"
	addressTypeIPv6  = "IPv6"
	protocolTCP      = "TCP"
)

// endpointSlicesPath is the API path of the EndpointSlices of a namespace
// (discovery.k8s.io/v1), under the server URL's own path.
func endpointSlicesPath(namespace string) string {
	return "/apis/discovery.k8s.io/v1/namespaces/" + namespace + "/endpointslices"
}

// decodeSlice decodes an EndpointSlice from the API's JSON, keeping only what
// compute reads: identity and labels, address type, ports, and each
// endpoint's addresses and conditions. A slice whose metadata decodes but
// whose body does not comes back empty with decodeErr set, so that compute
// reports it by name. It fails only when the metadata does not decode or
// names no object.
func decodeSlice(raw []byte) (*storedSlice, error) {
	var meta struct {
		Metadata objectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return nil, fmt.Errorf("endpoint slice metadata: %w", err)
	}
	if meta.Metadata.Name == "" {
		return nil, errors.New("endpoint slice without a name")
	}
	var s endpointSlice
	if err := json.Unmarshal(raw, &s); err != nil {
		return &storedSlice{endpointSlice: endpointSlice{Metadata: meta.Metadata}, decodeErr: err.Error()}, nil
	}
	return &storedSlice{endpointSlice: s}, nil
}
