package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// renderPod runs `nlb manifest args...` and strictly decodes the YAML it
// prints: a field corev1.Pod does not know fails the test.
func renderPod(t *testing.T, args ...string) (*corev1.Pod, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := runManifest(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("nlb manifest %q: %v\n%s", args, err, errOut.String())
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(out.Bytes(), &pod); err != nil {
		t.Fatalf("strict decode: %v\n%s", err, out.String())
	}
	return &pod, out.String()
}

// TestManifestCommon checks what both pods share: k0s's labels, host
// network, priority, tolerations, probe, read-only mounts and the
// container hardening.
func TestManifestCommon(t *testing.T) {
	for _, role := range []string{roleWorker, roleController} {
		t.Run(role, func(t *testing.T) {
			pod, text := renderPod(t, role)
			if pod.APIVersion != "v1" || pod.Kind != "Pod" {
				t.Errorf("apiVersion/kind %q/%q", pod.APIVersion, pod.Kind)
			}
			for _, f := range []string{"status:", "creationTimestamp"} {
				if strings.Contains(text, f) {
					t.Errorf("output has %q:\n%s", f, text)
				}
			}
			if pod.Namespace != "kube-system" {
				t.Errorf("namespace %q", pod.Namespace)
			}
			if errs := validation.IsDNS1123Subdomain(pod.Name); len(errs) > 0 {
				t.Errorf("name %q: %v", pod.Name, errs)
			}
			want := map[string]string{
				"app.kubernetes.io/name":       "k0s",
				"app.kubernetes.io/component":  pod.Name,
				"app.kubernetes.io/managed-by": "k0s",
				"app.kubernetes.io/version":    version,
				"app.kubernetes.io/part-of":    "nlb",
			}
			if len(pod.Labels) != len(want) {
				t.Errorf("labels %v, want %v", pod.Labels, want)
			}
			for k, v := range want {
				if pod.Labels[k] != v {
					t.Errorf("label %s=%q, want %q", k, pod.Labels[k], v)
				}
				if errs := validation.IsValidLabelValue(pod.Labels[k]); len(errs) > 0 {
					t.Errorf("label %s: %v", k, errs)
				}
			}
			s := pod.Spec
			if !s.HostNetwork {
				t.Error("hostNetwork false")
			}
			if s.DNSPolicy != corev1.DNSDefault {
				t.Errorf("dnsPolicy %q, want Default (the node's resolver)", s.DNSPolicy)
			}
			if s.PriorityClassName != "system-node-critical" {
				t.Errorf("priorityClassName %q", s.PriorityClassName)
			}
			if s.Priority == nil || *s.Priority != 2000001000 {
				t.Errorf("priority %v, want system-node-critical's 2000001000", s.Priority)
			}
			if len(s.Tolerations) != 1 || s.Tolerations[0] != (corev1.Toleration{Operator: corev1.TolerationOpExists}) {
				t.Errorf("tolerations %+v, want one {operator: Exists}", s.Tolerations)
			}
			if s.TerminationGracePeriodSeconds == nil || *s.TerminationGracePeriodSeconds != 30 {
				t.Errorf("terminationGracePeriodSeconds %v", s.TerminationGracePeriodSeconds)
			}
			if s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken {
				t.Error("service account token mounted")
			}
			if s.SecurityContext == nil || s.SecurityContext.SeccompProfile == nil ||
				s.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod securityContext %+v, want seccomp RuntimeDefault", s.SecurityContext)
			}
			if len(s.Containers) != 1 || len(s.InitContainers) != 0 {
				t.Fatalf("%d containers, %d init containers", len(s.Containers), len(s.InitContainers))
			}
			c := s.Containers[0]
			if c.Name != pod.Name {
				t.Errorf("container %q, pod %q", c.Name, pod.Name)
			}
			if c.Image != "ghcr.io/nlb-dev/nlb:"+version || c.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("image %q %q", c.Image, c.ImagePullPolicy)
			}
			if len(c.Command) != 0 {
				t.Errorf("command %q: the image's entrypoint runs", c.Command)
			}
			sc := c.SecurityContext
			if sc == nil {
				t.Fatal("no container securityContext")
			}
			if sc.Privileged == nil || *sc.Privileged {
				t.Error("privileged")
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Error("allowPrivilegeEscalation not false")
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Error("root file system writable")
			}
			if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("capabilities %+v, want drop ALL", sc.Capabilities)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				t.Errorf("requests %v", c.Resources.Requests)
			}
			if len(c.Resources.Limits) != 0 {
				t.Errorf("limits %v: a load balancer must not be throttled or OOM-killed for a burst", c.Resources.Limits)
			}
			p := c.LivenessProbe
			if p == nil || p.HTTPGet == nil {
				t.Fatalf("liveness probe %+v, want httpGet", p)
			}
			port := 9902
			if role == roleController {
				port = 9647
			}
			if g := p.HTTPGet; g.Host != "127.0.0.1" || g.Path != "/healthz" || g.Port.IntValue() != port || g.Scheme != corev1.URISchemeHTTP {
				t.Errorf("probe %+v, want http://127.0.0.1:%d/healthz", g, port)
			}
			if p.PeriodSeconds != 10 || p.TimeoutSeconds != 3 || p.FailureThreshold != 3 {
				t.Errorf("probe timing %d/%d/%d, want k0s's 10/3/3", p.PeriodSeconds, p.TimeoutSeconds, p.FailureThreshold)
			}
			if !slices.Contains(c.Args, "--admin") || c.Args[slices.Index(c.Args, "--admin")+1] != "127.0.0.1:"+strconv.Itoa(port) {
				t.Errorf("args %q: want --admin 127.0.0.1:%d", c.Args, port)
			}
			if len(c.Ports) != 1 || c.Ports[0].ContainerPort != int32(port) || c.Ports[0].HostPort != int32(port) {
				t.Errorf("ports %+v", c.Ports)
			}
			checkMounts(t, pod)
		})
	}
}

// checkMounts checks that every mount names a volume, hostPath mounts are
// read-only at their host path, and the only writable mount is the
// worker's cache.
func checkMounts(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = v
	}
	c := pod.Spec.Containers[0]
	if len(c.VolumeMounts) != len(vols) {
		t.Errorf("%d mounts, %d volumes", len(c.VolumeMounts), len(vols))
	}
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok {
			t.Errorf("mount %q: no volume", m.Name)
			continue
		}
		if m.Name == "cache" {
			if pod.Name != "nllb" || m.MountPath != "/var/lib/nlb" || m.ReadOnly {
				t.Errorf("cache mount %+v in pod %s", m, pod.Name)
			}
			continue
		}
		if !m.ReadOnly {
			t.Errorf("mount %q writable", m.Name)
		}
		if v.HostPath == nil || v.HostPath.Path != m.MountPath {
			t.Errorf("mount %+v of volume %+v: want a hostPath at the same path", m, v)
		}
	}
}

// TestManifestWorker checks the worker pod: k0s's name, no capabilities,
// a non-root user, `client` with the kubeconfig and the cache.
func TestManifestWorker(t *testing.T) {
	pod, _ := renderPod(t, roleWorker)
	if pod.Name != "nllb" || pod.Labels["app.kubernetes.io/component"] != "nllb" {
		t.Errorf("name %q labels %v", pod.Name, pod.Labels)
	}
	c := pod.Spec.Containers[0]
	if want := []string{"client", "--admin", "127.0.0.1:9902", "--kubeconfig", "/run/nlb/kubeconfig", "--cache-file", "/var/lib/nlb/apiservers"}; !slices.Equal(c.Args, want) {
		t.Errorf("args %q, want %q", c.Args, want)
	}
	sc := c.SecurityContext
	if len(sc.Capabilities.Add) != 0 {
		t.Errorf("capabilities added: %v", sc.Capabilities.Add)
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 || sc.RunAsGroup == nil || *sc.RunAsGroup != 65532 {
		t.Errorf("user %v/%v nonRoot %v", sc.RunAsUser, sc.RunAsGroup, sc.RunAsNonRoot)
	}
	if psc := pod.Spec.SecurityContext; psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("pod runAsNonRoot not true")
	}
	// The kubeconfig lies in the config directory: one mount for both.
	if len(pod.Spec.Volumes) != 2 {
		t.Fatalf("volumes %+v, want config and cache", pod.Spec.Volumes)
	}
	cfg, cache := pod.Spec.Volumes[0], pod.Spec.Volumes[1]
	if cfg.HostPath == nil || cfg.HostPath.Path != "/run/nlb" || *cfg.HostPath.Type != corev1.HostPathDirectory {
		t.Errorf("config volume %+v", cfg)
	}
	if cache.EmptyDir == nil {
		t.Errorf("cache volume %+v, want an emptyDir", cache)
	}

	// A host cache directory, a kubeconfig elsewhere with its certificates,
	// a config file, another user, extra arguments, image and namespace.
	pod, _ = renderPod(t, roleWorker, "--cache-dir", "/var/lib/nlb-cache", "--kubeconfig", "/var/lib/k0s/kubelet.conf",
		"--mount", "/var/lib/k0s/kubelet/pki", "--config-file", "k0s.yaml", "--user", "1000", "--arg", "--log-level=debug",
		"--image", "registry.example/nlb:1", "--namespace", "nlb-system", "--admin-port", "7000", "--termination-grace-period", "5")
	c = pod.Spec.Containers[0]
	want := []string{"client", "--config", "/run/nlb/k0s.yaml", "--admin", "127.0.0.1:7000", "--kubeconfig", "/var/lib/k0s/kubelet.conf",
		"--cache-file", "/var/lib/nlb/apiservers", "--log-level=debug"}
	if !slices.Equal(c.Args, want) {
		t.Errorf("args %q, want %q", c.Args, want)
	}
	if *c.SecurityContext.RunAsUser != 1000 || c.Image != "registry.example/nlb:1" || pod.Namespace != "nlb-system" || *pod.Spec.TerminationGracePeriodSeconds != 5 {
		t.Errorf("user %d image %q namespace %q grace %d", *c.SecurityContext.RunAsUser, c.Image, pod.Namespace, *pod.Spec.TerminationGracePeriodSeconds)
	}
	types := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		if v.HostPath == nil {
			t.Fatalf("volume %+v: want hostPath", v)
		}
		typ := ""
		if v.HostPath.Type != nil {
			typ = string(*v.HostPath.Type)
		}
		types[v.HostPath.Path] = typ
	}
	wantTypes := map[string]string{"/run/nlb": "Directory", "/var/lib/k0s/kubelet.conf": "File", "/var/lib/nlb-cache": "DirectoryOrCreate", "/var/lib/k0s/kubelet/pki": ""}
	if len(types) != len(wantTypes) {
		t.Errorf("volumes %v, want %v", types, wantTypes)
	}
	for p, typ := range wantTypes {
		if got, ok := types[p]; !ok || got != typ {
			t.Errorf("volume %s: type %q, want %q", p, got, typ)
		}
	}
	checkMounts(t, pod)
}

// TestManifestController checks the controller pod: root with NET_ADMIN,
// NET_RAW and BPF only, `controller` with k0s's configuration and admin
// kubeconfig (as README recommends: discovery and /readyz checks).
func TestManifestController(t *testing.T) {
	pod, _ := renderPod(t, roleController)
	if pod.Name != "cplb" || pod.Labels["app.kubernetes.io/component"] != "cplb" {
		t.Errorf("name %q labels %v", pod.Name, pod.Labels)
	}
	c := pod.Spec.Containers[0]
	if want := []string{"controller", "--config", "/etc/k0s/k0s.yaml", "--admin", "127.0.0.1:9647",
		"--kubeconfig", "/var/lib/k0s/pki/admin.conf"}; !slices.Equal(c.Args, want) {
		t.Errorf("args %q, want %q", c.Args, want)
	}
	if len(pod.Spec.Volumes) != 2 || pod.Spec.Volumes[1].HostPath == nil || pod.Spec.Volumes[1].HostPath.Path != "/var/lib/k0s/pki/admin.conf" ||
		pod.Spec.Volumes[1].HostPath.Type == nil || *pod.Spec.Volumes[1].HostPath.Type != corev1.HostPathFile {
		t.Errorf("volumes %+v, want /etc/k0s and the admin kubeconfig file", pod.Spec.Volumes)
	}
	checkMounts(t, pod)

	pod, _ = renderPod(t, roleController, "--kubeconfig", "")
	c = pod.Spec.Containers[0]
	if want := []string{"controller", "--config", "/etc/k0s/k0s.yaml", "--admin", "127.0.0.1:9647"}; !slices.Equal(c.Args, want) {
		t.Errorf("--kubeconfig '': args %q, want %q", c.Args, want)
	}
	sc := c.SecurityContext
	if !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_ADMIN", "NET_RAW", "BPF"}) {
		t.Errorf("capabilities added %v, want NET_ADMIN NET_RAW BPF", sc.Capabilities.Add)
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 || sc.RunAsNonRoot == nil || *sc.RunAsNonRoot {
		t.Errorf("user %v nonRoot %v, want root", sc.RunAsUser, sc.RunAsNonRoot)
	}
	if len(pod.Spec.Volumes) != 1 || pod.Spec.Volumes[0].HostPath == nil || pod.Spec.Volumes[0].HostPath.Path != "/etc/k0s" {
		t.Errorf("volumes %+v, want /etc/k0s only", pod.Spec.Volumes)
	}

	pod, _ = renderPod(t, roleController, "--kubeconfig", "/etc/k0s/admin.conf")
	c = pod.Spec.Containers[0]
	if !slices.Contains(c.Args, "/etc/k0s/admin.conf") || len(pod.Spec.Volumes) != 1 {
		t.Errorf("a kubeconfig in --config-dir: args %q volumes %+v", c.Args, pod.Spec.Volumes)
	}
	checkMounts(t, pod)
}

// TestManifestErrors checks that bad roles and flags fail instead of
// printing a pod.
func TestManifestErrors(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"master"},
		{roleWorker, "extra"},
		{roleWorker, "--user", "0"},
		{roleWorker, "--kubeconfig", ""},
		{roleWorker, "--kubeconfig", "relative/kubeconfig"},
		{roleWorker, "--config-dir", "/"},
		{roleWorker, "--config-dir", "/run/../etc"},
		{roleWorker, "--config-file", "a/b"},
		{roleWorker, "--admin-port", "0"},
		{roleWorker, "--admin-port", "65536"},
		{roleWorker, "--mount", "etc"},
		{roleWorker, "--image-pull-policy", "Sometimes"},
		{roleWorker, "--termination-grace-period", "-1"},
		{roleWorker, "--namespace", ""},
		{roleWorker, "--namespace", "Bad_NS!"},
		{roleWorker, "--image", "UPPER CASE::bad"},
		{roleController, "--cache-dir", "/var/lib/nlb"},
		{roleController, "--user", "1000"},
		{roleController, "--user", "65532"}, // the worker's default, still not the controller's
		{roleController, "--no-such-flag"},
	} {
		var out bytes.Buffer
		if err := runManifest(context.Background(), args, &out, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
		if out.Len() != 0 {
			t.Errorf("%q: printed %q", args, out.String())
		}
	}
	// Help goes to stdout; `nlb manifest -h` gives each role's defaults.
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-h"}, []string{"--admin-port port", "(default controller 9647, worker 9902)",
			`(default controller "/var/lib/k0s/pki/admin.conf", worker "/run/nlb/kubeconfig")`,
			`(default controller "/etc/k0s", worker "/run/nlb")`, `(default "kube-system")`}},
		{[]string{roleWorker, "-h"}, []string{"--admin-port port", "(default 9902)", `(default "/run/nlb/kubeconfig")`}},
		{[]string{roleController, "--help"}, []string{"(default 9647)", `(default "/var/lib/k0s/pki/admin.conf")`}},
	} {
		var out, errOut bytes.Buffer
		if err := runManifest(context.Background(), tc.args, &out, &errOut); err != flag.ErrHelp {
			t.Errorf("%q: %v, want flag.ErrHelp", tc.args, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%q: usage without %q:\n%s", tc.args, w, out.String())
			}
		}
		if errOut.Len() != 0 {
			t.Errorf("%q: wrote to stderr: %s", tc.args, errOut.String())
		}
	}
}

// TestManifestVersionSanitized checks that a version with characters a
// label value or image tag may not hold still gives a valid pod.
func TestManifestVersionSanitized(t *testing.T) {
	for v, want := range map[string]string{
		"v1.32.3+k0s.0":               "v1.32.3-k0s.0",
		"e4a1841-dirty":               "e4a1841-dirty",
		"+x+":                         "x",
		strings.Repeat("a", 70):       strings.Repeat("a", 63),
		"-" + strings.Repeat("b", 70): strings.Repeat("b", 62),
	} {
		if got := labelValue(v); got != want {
			t.Errorf("labelValue(%q) = %q, want %q", v, got, want)
		}
		if errs := validation.IsValidLabelValue(labelValue(v)); len(errs) > 0 {
			t.Errorf("labelValue(%q): %v", v, errs)
		}
	}
	if got := imageTag("+++"); got != "dev" {
		t.Errorf("imageTag(+++) = %q", got)
	}
	pod, err := buildPod(&manifestOptions{role: roleWorker, version: "v1.0.0+k0s.1", pullPolicy: "Never", namespace: "kube-system",
		configDir: "/run/nlb", kubeconfig: "/run/nlb/kubeconfig", adminPort: 1, uid: 1})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Metadata.Labels["app.kubernetes.io/version"] != "v1.0.0-k0s.1" || pod.Spec.Containers[0].Image != "ghcr.io/nlb-dev/nlb:v1.0.0-k0s.1" {
		t.Errorf("label %q image %q", pod.Metadata.Labels["app.kubernetes.io/version"], pod.Spec.Containers[0].Image)
	}
}

// TestManifestImageNamespaceUser: --image must be an image reference a
// container runtime can parse, --namespace a namespace name, and --user
// is refused for the controller instead of being silently ignored (issue
// 10, item 7). Each error names the flag.
func TestManifestImageNamespaceUser(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		image string
		ok    bool
	}{
		{"ghcr.io/nlb-dev/nlb:v1.2.3", true},
		{"nlb", true},
		{"nlb:latest", true},
		{"library/nlb:1.0_rc-1", true},
		{"localhost:5000/nlb@" + digest, true},
		{"registry.example.com/a/b/c:tag@" + digest, true},
		{"[2001:db8::1]:5000/nlb:x", true},
		{"a__b/c-d--e.f:TAG_1", true},
		{"Registry.Example.COM/nlb", true}, // the registry is a host name: any case
		{"UPPER CASE::bad", false},
		{"Nlb", false},
		{"ghcr.io/NLB-dev/nlb", false},
		{"nlb:", false},
		{"nlb:-bad", false},
		{"nlb:" + strings.Repeat("t", 129), false},
		{"nlb@sha256:abc", false},
		{":tag", false},
		{"ghcr.io/", false},
		{"a//b", false},
		{"a-/b", false},
		{"nlb ", false},
		{strings.Repeat("a", 256), false},
	} {
		args := []string{roleWorker, "--image", tc.image}
		var out bytes.Buffer
		err := runManifest(context.Background(), args, &out, io.Discard)
		if tc.ok {
			if err != nil {
				t.Errorf("--image %q: %v", tc.image, err)
			} else if !strings.Contains(out.String(), "image: "+tc.image) && !strings.Contains(out.String(), "image: '"+tc.image+"'") {
				t.Errorf("--image %q not in the pod:\n%s", tc.image, &out)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "--image ") {
			t.Errorf("--image %q: error %v, want one naming --image", tc.image, err)
		}
	}

	for _, ns := range []string{"kube-system", "a", "nlb-1", strings.Repeat("a", 63),
		"", "Bad_NS!", "KUBE-SYSTEM", "-a", "a-", "a.b", strings.Repeat("a", 64)} {
		args := []string{roleWorker, "--namespace", ns}
		err := runManifest(context.Background(), args, io.Discard, io.Discard)
		// The same rule as the API server's.
		want := len(validation.IsDNS1123Label(ns)) == 0
		if (err == nil) != want {
			t.Errorf("--namespace %q: error %v, valid per k8s.io/apimachinery: %v", ns, err, want)
		}
		if err != nil && !strings.Contains(err.Error(), "--namespace ") {
			t.Errorf("--namespace %q: error %v does not name the flag", ns, err)
		}
	}

	err := runManifest(context.Background(), []string{roleController, "--user", "1000"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--user: worker only") {
		t.Errorf("controller --user 1000: %v", err)
	}
	pod, _ := renderPod(t, roleWorker, "--user", "1000")
	if u := pod.Spec.Containers[0].SecurityContext.RunAsUser; u == nil || *u != 1000 {
		t.Errorf("worker --user 1000: runAsUser %v", u)
	}
}
