// Package podspec holds the subset of the Kubernetes core/v1 Pod types that
// `nlb manifest` prints, with the API's JSON field names. Importing
// k8s.io/api/core/v1 for them would link, and initialise at every start, the
// whole core API group into the one nlb binary that also runs on every
// worker, and even apimachinery's meta/v1, resource and intstr packages
// cost `nlb client` resident memory through their package initialisation.
// The manifest tests decode the output strictly into the real corev1.Pod,
// and the end-to-end lab has a real API server accept it.
package podspec

// Pod is core/v1 Pod.
type Pod struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   ObjectMeta `json:"metadata"`
	Spec       PodSpec    `json:"spec,omitempty"`
}

// ObjectMeta is the part of meta/v1 ObjectMeta nlb sets.
type ObjectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// PodSpec is the part of core/v1 PodSpec nlb sets.
type PodSpec struct {
	Volumes                       []Volume            `json:"volumes,omitempty"`
	Containers                    []Container         `json:"containers"`
	RestartPolicy                 RestartPolicy       `json:"restartPolicy,omitempty"`
	TerminationGracePeriodSeconds *int64              `json:"terminationGracePeriodSeconds,omitempty"`
	DNSPolicy                     DNSPolicy           `json:"dnsPolicy,omitempty"`
	AutomountServiceAccountToken  *bool               `json:"automountServiceAccountToken,omitempty"`
	HostNetwork                   bool                `json:"hostNetwork,omitempty"`
	SecurityContext               *PodSecurityContext `json:"securityContext,omitempty"`
	Tolerations                   []Toleration        `json:"tolerations,omitempty"`
	PriorityClassName             string              `json:"priorityClassName,omitempty"`
	Priority                      *int32              `json:"priority,omitempty"`
	EnableServiceLinks            *bool               `json:"enableServiceLinks,omitempty"`
}

// Container is the part of core/v1 Container nlb sets.
type Container struct {
	Name                     string                   `json:"name"`
	Image                    string                   `json:"image,omitempty"`
	Args                     []string                 `json:"args,omitempty"`
	Ports                    []ContainerPort          `json:"ports,omitempty"`
	Resources                ResourceRequirements     `json:"resources,omitempty"`
	VolumeMounts             []VolumeMount            `json:"volumeMounts,omitempty"`
	LivenessProbe            *Probe                   `json:"livenessProbe,omitempty"`
	TerminationMessagePolicy TerminationMessagePolicy `json:"terminationMessagePolicy,omitempty"`
	ImagePullPolicy          PullPolicy               `json:"imagePullPolicy,omitempty"`
	SecurityContext          *SecurityContext         `json:"securityContext,omitempty"`
}

// ContainerPort is core/v1 ContainerPort.
type ContainerPort struct {
	Name          string   `json:"name,omitempty"`
	HostPort      int32    `json:"hostPort,omitempty"`
	ContainerPort int32    `json:"containerPort"`
	Protocol      Protocol `json:"protocol,omitempty"`
}

// ResourceRequirements is the requests part of core/v1 ResourceRequirements.
type ResourceRequirements struct {
	Requests ResourceList `json:"requests,omitempty"`
}

// ResourceList is core/v1 ResourceList; values are quantities in their
// canonical string form ("10m", "32Mi").
type ResourceList map[ResourceName]string

// ResourceName is core/v1 ResourceName.
type ResourceName string

// VolumeMount is core/v1 VolumeMount.
type VolumeMount struct {
	Name      string `json:"name"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
	MountPath string `json:"mountPath"`
}

// Volume is core/v1 Volume with the two sources nlb uses.
type Volume struct {
	Name         string `json:"name"`
	VolumeSource `json:",inline"`
}

// VolumeSource is the hostPath and emptyDir part of core/v1 VolumeSource.
type VolumeSource struct {
	HostPath *HostPathVolumeSource `json:"hostPath,omitempty"`
	EmptyDir *EmptyDirVolumeSource `json:"emptyDir,omitempty"`
}

// HostPathVolumeSource is core/v1 HostPathVolumeSource.
type HostPathVolumeSource struct {
	Path string        `json:"path"`
	Type *HostPathType `json:"type,omitempty"`
}

// EmptyDirVolumeSource is core/v1 EmptyDirVolumeSource without its options.
type EmptyDirVolumeSource struct{}

// HostPathType is core/v1 HostPathType.
type HostPathType string

// Probe is core/v1 Probe.
type Probe struct {
	ProbeHandler     `json:",inline"`
	TimeoutSeconds   int32 `json:"timeoutSeconds,omitempty"`
	PeriodSeconds    int32 `json:"periodSeconds,omitempty"`
	SuccessThreshold int32 `json:"successThreshold,omitempty"`
	FailureThreshold int32 `json:"failureThreshold,omitempty"`
}

// ProbeHandler is the httpGet part of core/v1 ProbeHandler.
type ProbeHandler struct {
	HTTPGet *HTTPGetAction `json:"httpGet,omitempty"`
}

// HTTPGetAction is core/v1 HTTPGetAction without headers.
type HTTPGetAction struct {
	Path   string    `json:"path,omitempty"`
	Port   int32     `json:"port"` // an IntOrString; nlb always uses the number
	Host   string    `json:"host,omitempty"`
	Scheme URIScheme `json:"scheme,omitempty"`
}

// SecurityContext is the part of core/v1 SecurityContext nlb sets.
type SecurityContext struct {
	Capabilities             *Capabilities `json:"capabilities,omitempty"`
	Privileged               *bool         `json:"privileged,omitempty"`
	RunAsUser                *int64        `json:"runAsUser,omitempty"`
	RunAsGroup               *int64        `json:"runAsGroup,omitempty"`
	RunAsNonRoot             *bool         `json:"runAsNonRoot,omitempty"`
	ReadOnlyRootFilesystem   *bool         `json:"readOnlyRootFilesystem,omitempty"`
	AllowPrivilegeEscalation *bool         `json:"allowPrivilegeEscalation,omitempty"`
}

// PodSecurityContext is the part of core/v1 PodSecurityContext nlb sets.
type PodSecurityContext struct {
	RunAsNonRoot   *bool           `json:"runAsNonRoot,omitempty"`
	SeccompProfile *SeccompProfile `json:"seccompProfile,omitempty"`
}

// Capabilities is core/v1 Capabilities.
type Capabilities struct {
	Add  []Capability `json:"add,omitempty"`
	Drop []Capability `json:"drop,omitempty"`
}

// Capability is core/v1 Capability.
type Capability string

// SeccompProfile is core/v1 SeccompProfile without a localhost profile.
type SeccompProfile struct {
	Type SeccompProfileType `json:"type"`
}

// Toleration is the operator part of core/v1 Toleration.
type Toleration struct {
	Operator TolerationOperator `json:"operator,omitempty"`
}

// String types and the values nlb uses, as in core/v1.
type (
	// RestartPolicy is core/v1 RestartPolicy.
	RestartPolicy string
	// DNSPolicy is core/v1 DNSPolicy.
	DNSPolicy string
	// PullPolicy is core/v1 PullPolicy.
	PullPolicy string
	// Protocol is core/v1 Protocol.
	Protocol string
	// URIScheme is core/v1 URIScheme.
	URIScheme string
	// TerminationMessagePolicy is core/v1 TerminationMessagePolicy.
	TerminationMessagePolicy string
	// SeccompProfileType is core/v1 SeccompProfileType.
	SeccompProfileType string
	// TolerationOperator is core/v1 TolerationOperator.
	TolerationOperator string
)

// The values nlb uses, as in core/v1.
const (
	RestartPolicyAlways                     RestartPolicy            = "Always"
	DNSDefault                              DNSPolicy                = "Default"
	PullAlways                              PullPolicy               = "Always"
	PullNever                               PullPolicy               = "Never"
	PullIfNotPresent                        PullPolicy               = "IfNotPresent"
	ProtocolTCP                             Protocol                 = "TCP"
	URISchemeHTTP                           URIScheme                = "HTTP"
	TerminationMessageFallbackToLogsOnError TerminationMessagePolicy = "FallbackToLogsOnError"
	SeccompProfileTypeRuntimeDefault        SeccompProfileType       = "RuntimeDefault"
	TolerationOpExists                      TolerationOperator       = "Exists"
	ResourceCPU                             ResourceName             = "cpu"
	ResourceMemory                          ResourceName             = "memory"
	HostPathDirectory                       HostPathType             = "Directory"
	HostPathDirectoryOrCreate               HostPathType             = "DirectoryOrCreate"
	HostPathFile                            HostPathType             = "File"
)
