package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/nlb-dev/nlb/cmd/nlb/internal/podspec"
)

// The clusters `nlb manifest --for` writes pods for.
const (
	targetK0s     = "k0s"
	targetKubeadm = "kubeadm"

	// kubeadmPodName is the controller pod's name on kubeadm nodes (the
	// mirror pod is nlb-<node>, next to kube-apiserver-<node>).
	kubeadmPodName = "nlb"
	// kubeadmAdminConf is kubeadm's admin kubeconfig. Its server is the
	// controlPlaneEndpoint (the VIP), so the pod is told where the local
	// API server is; from Kubernetes 1.29 its identity has rights only
	// once kubeadm init has created the kubeadm:cluster-admins binding.
	kubeadmAdminConf = "/etc/kubernetes/admin.conf"
	// kubeadmConfigDir and kubeadmConfigFile: nlb's own configuration
	// (kubeadm has no controlPlaneLoadBalancing section), as the
	// packages install it for nlb-controller.service.
	kubeadmConfigDir  = "/etc/nlb"
	kubeadmConfigFile = "controller.yaml"
)

// applyTarget sets the --for kubeadm defaults of the flags not given
// (set holds the names of those given).
func (o *manifestOptions) applyTarget(set map[string]bool) {
	if o.target != targetKubeadm || o.role != roleController {
		return
	}
	if !set["config-dir"] {
		o.configDir = kubeadmConfigDir
	}
	if !set["config-file"] {
		o.configFile = kubeadmConfigFile
	}
	if !set["kubeconfig"] {
		o.kubeconfig = kubeadmAdminConf
	}
}

// targetArgs are the container arguments --for adds: on kubeadm the local
// API server's address, as the health check's target (admin.conf's
// server is the VIP, which would check whichever node holds it) and as
// the proxy's backend until discovery has the EndpointSlices (the VIP as
// a backend would loop back into the proxy).
func (o *manifestOptions) targetArgs() []string {
	if o.target != targetKubeadm {
		return nil
	}
	local := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.apiPort))
	return []string{"--local-api-server", local, "--backend", local}
}

// targetLabels relabels a kubeadm pod: not k0s's, and in kubeadm's
// control-plane tier like its own static pods.
func (o *manifestOptions) targetLabels(pod *podspec.Pod) {
	if o.target != targetKubeadm {
		return
	}
	pod.Metadata.Labels["app.kubernetes.io/name"] = "nlb"
	delete(pod.Metadata.Labels, "app.kubernetes.io/managed-by")
	pod.Metadata.Labels["tier"] = "control-plane"
}

// validateTarget checks --for and --api-port.
func (o *manifestOptions) validateTarget() []error {
	var errs []error
	switch o.target {
	case "", targetK0s: // "": a manifestOptions built in Go
	case targetKubeadm:
		if o.role != roleController {
			errs = append(errs, errors.New("--for kubeadm: controller only (kubeadm workers reach the API servers through the VIP)"))
		}
		if o.apiPort < 1 || o.apiPort > 65535 {
			errs = append(errs, fmt.Errorf("--api-port %d: want 1-65535", o.apiPort))
		}
	default:
		errs = append(errs, fmt.Errorf("--for %q: want k0s or kubeadm", o.target))
	}
	return errs
}
