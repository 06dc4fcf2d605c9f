package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestManifestKubeadm: --for kubeadm writes the controller pod for
// /etc/kubernetes/manifests: pod nlb, /etc/nlb/controller.yaml, kubeadm's
// admin.conf, and the local API server on 127.0.0.1 as the health check's
// target and the proxy's first backend (admin.conf's server is the VIP);
// the controller's capabilities; flags given keep their values.
func TestManifestKubeadm(t *testing.T) {
	pod, _ := renderPod(t, roleController, "--for", "kubeadm")
	if pod.Name != "nlb" || pod.Namespace != "kube-system" {
		t.Errorf("pod %s/%s, want kube-system/nlb", pod.Namespace, pod.Name)
	}
	if l := pod.Labels; l["app.kubernetes.io/name"] != "nlb" || l["tier"] != "control-plane" || l["app.kubernetes.io/managed-by"] != "" {
		t.Errorf("labels %v: want name nlb, tier control-plane, not managed by k0s", l)
	}
	c := pod.Spec.Containers[0]
	want := []string{"controller", "--config", "/etc/nlb/controller.yaml", "--admin", "127.0.0.1:9647",
		"--kubeconfig", "/etc/kubernetes/admin.conf", "--local-api-server", "127.0.0.1:6443", "--backend", "127.0.0.1:6443"}
	if !slices.Equal(c.Args, want) {
		t.Errorf("args %q, want %q", c.Args, want)
	}
	vols := map[string]corev1.HostPathType{}
	for _, v := range pod.Spec.Volumes {
		if v.HostPath == nil || v.HostPath.Type == nil {
			t.Fatalf("volume %+v: want a typed hostPath", v)
		}
		vols[v.HostPath.Path] = *v.HostPath.Type
	}
	if len(vols) != 2 || vols["/etc/nlb"] != corev1.HostPathDirectory || vols["/etc/kubernetes/admin.conf"] != corev1.HostPathFile {
		t.Errorf("host paths %v, want /etc/nlb (directory) and /etc/kubernetes/admin.conf (file)", vols)
	}
	for _, m := range c.VolumeMounts {
		if !m.ReadOnly {
			t.Errorf("mount %s is writable", m.MountPath)
		}
	}
	if !pod.Spec.HostNetwork || pod.Spec.PriorityClassName != "system-node-critical" {
		t.Error("not host network or not system-node-critical")
	}
	if sc := c.SecurityContext; !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_ADMIN", "NET_RAW", "BPF"}) {
		t.Errorf("capabilities %v", sc.Capabilities.Add)
	}
	checkMounts(t, pod)

	// Flags given win over the kubeadm defaults.
	pod, _ = renderPod(t, roleController, "--for", "kubeadm", "--config-dir", "/etc/nlb-test", "--config-file", "nlb.yaml",
		"--kubeconfig", "/etc/kubernetes/super-admin.conf", "--api-port", "16443")
	want = []string{"controller", "--config", "/etc/nlb-test/nlb.yaml", "--admin", "127.0.0.1:9647",
		"--kubeconfig", "/etc/kubernetes/super-admin.conf", "--local-api-server", "127.0.0.1:16443", "--backend", "127.0.0.1:16443"}
	if c := pod.Spec.Containers[0]; !slices.Equal(c.Args, want) {
		t.Errorf("with flags: args %q, want %q", c.Args, want)
	}

	// --for k0s (the default) is unchanged: no local API server flags.
	pod, _ = renderPod(t, roleController, "--for", "k0s")
	if c := pod.Spec.Containers[0]; slices.Contains(c.Args, "--local-api-server") || pod.Name != "cplb" {
		t.Errorf("--for k0s: pod %s args %q", pod.Name, c.Args)
	}
}

// TestManifestKubeadmErrors: a worker for kubeadm, an unknown --for and a
// bad --api-port are refused, naming the flag.
func TestManifestKubeadmErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{roleWorker, "--for", "kubeadm"}, "--for kubeadm: controller only"},
		{[]string{roleController, "--for", "rke2"}, `--for "rke2": want k0s or kubeadm`},
		{[]string{roleController, "--for", "kubeadm", "--api-port", "0"}, "--api-port 0: want 1-65535"},
	} {
		var out, errOut bytes.Buffer
		err := runManifest(context.Background(), tc.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.want)
		}
		if out.Len() != 0 {
			t.Errorf("%q: printed a pod", tc.args)
		}
	}
}
