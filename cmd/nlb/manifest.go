package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/nlb-dev/nlb/cmd/nlb/internal/podspec"
	"sigs.k8s.io/yaml"
)

// Static pod roles. The worker pod takes the name k0s gives its Envoy pod,
// so the mirror pod stays nllb-<node>; k0s has no controller pod, and the
// controller one is named after k0s's component (cplb).
const (
	roleController = "controller"
	roleWorker     = "worker"

	// nonRootUID is the worker's default user and group: the distroless
	// "nonroot" id, which owns nothing on a host.
	nonRootUID = 65532

	// controllerKubeconfig is k0s's admin kubeconfig on a controller: the
	// controller pod reads the EndpointSlices and checks /readyz with it.
	controllerKubeconfig = "/var/lib/k0s/pki/admin.conf"

	// workerCacheDir is where the worker's API server cache is mounted.
	workerCacheDir = "/var/lib/nlb"

	// systemNodeCritical is the PriorityClass of both pods.
	systemNodeCritical = "system-node-critical"
	// systemNodeCriticalValue is that class's value. It goes into
	// spec.priority as well, as k0s does for its nllb pod (issue #7782):
	// the kubelet reads a static pod's priority from its own spec (no
	// admission runs there), and the Priority admission plugin accepts the
	// mirror pod because the value matches the class.
	systemNodeCriticalValue int32 = 2000001000
)

// manifestOptions are the settings of one rendered static pod.
type manifestOptions struct {
	role        string   // roleController or roleWorker
	version     string   // nlb version, for the version label and the default image
	image       string   // container image reference
	pullPolicy  string   // container imagePullPolicy
	namespace   string   // pod namespace
	configDir   string   // host directory holding the configuration, mounted read-only at the same path
	configFile  string   // configuration file name inside configDir
	kubeconfig  string   // host kubeconfig file, mounted read-only at the same path; empty: none
	cacheDir    string   // worker: host directory for the API server cache; empty: an emptyDir
	mounts      []string // more host paths mounted read-only at the same path
	adminPort   int      // admin server port on 127.0.0.1 (probe target)
	uid         int64    // worker user and group id (non-zero)
	uidSet      bool     // --user was given: refused for the controller, which runs as root
	gracePeriod int64    // terminationGracePeriodSeconds
	extraArgs   []string // appended to the container arguments
	target      string   // targetK0s or targetKubeadm (--for)
	apiPort     int      // kubeadm: the local API server's port (--api-port)
}

// manifestUsage explains `nlb manifest`.
const manifestUsage = `Usage: nlb manifest controller|worker [flags]

Prints a static pod manifest (YAML) for the kubelet's manifest directory or
k0s's static pod server.

  worker      pod "nllb" (the name and labels k0s gives its Envoy pod) running
              "nlb client": no capabilities, non-root (--user), read-only root
              file system. Its only writable mount is the API server cache
              (an emptyDir, or --cache-dir).
  controller  pod "cplb" running "nlb controller" as root with only NET_ADMIN
              (VIPs, nftables), NET_RAW (VRRP and ARP/NDP sockets) and BPF
              (the sk_lookup program that steers VIP traffic into the proxy;
              without it steering falls back to nftables). Root, because a
              container runtime grants added capabilities to uid 0 only:
              Kubernetes cannot set ambient capabilities for another user.

Both pods: hostNetwork, the node's DNS resolver, priorityClassName
system-node-critical (and its value as priority, as k0s does), tolerate
every taint, seccomp RuntimeDefault, read-only hostPath mounts of --config-dir
(the directory, so that atomic renames of files in it are seen), --kubeconfig
and --mount, and a liveness probe on http://127.0.0.1:<admin-port>/healthz.
The mounted files must be readable by the pod's user: the worker's kubeconfig
(with its credentials embedded, or their files added with --mount) must be
readable by --user.

--for kubeadm (controller only) writes the pod for /etc/kubernetes/manifests
of a kubeadm control plane node: pod "nlb", the configuration in
/etc/nlb/controller.yaml, kubeadm's /etc/kubernetes/admin.conf, and the local
API server on 127.0.0.1:--api-port as the health check's target and the
proxy's first backend (admin.conf's server is the VIP itself). VRRP needs
no API server: the VIPs come up during kubeadm init, before the API server
exists (apiServerHealth.startupGrace), and a 403 to admin.conf (before
kubeadm init has created its RBAC) does not take them away.

Flags:
`

// runManifest implements `nlb manifest`.
func runManifest(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != roleController && args[0] != roleWorker) {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, manifestUsage)
			printManifestDefaults(stdout)
			return flag.ErrHelp
		}
		return &usageError{cmd: "manifest", err: errors.New("want a role: controller or worker"), hint: true}
	}
	o := &manifestOptions{role: args[0], version: version}
	fs := manifestFlags(o.role, o, stdout)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.uidSet = set["user"]
	o.applyTarget(set)
	out, err := renderManifest(o)
	if err != nil {
		return err
	}
	if _, err := stdout.Write(out); err != nil {
		return fmt.Errorf("manifest: write: %w", err)
	}
	return nil
}

// printManifestDefaults prints the flags of both roles, each default
// given per role where the roles' differ.
func printManifestDefaults(w io.Writer) {
	ctl := manifestFlags(roleController, &manifestOptions{}, io.Discard)
	manifestFlags(roleWorker, &manifestOptions{}, io.Discard).VisitAll(func(f *flag.Flag) {
		def, cdef := f.DefValue, ctl.Lookup(f.Name).DefValue
		q := func(s string) string { return s }
		if isStringFlag(f) {
			q = strconv.Quote
		}
		switch {
		case def == cdef && isZeroValue(f):
			def = ""
		case def == cdef:
			def = q(def)
		default:
			def = "controller " + q(cdef) + ", worker " + q(def)
		}
		printFlag(w, f, def)
	})
}

// manifestFlags binds the flags of role's manifest to o, with the role's
// defaults; its usage goes to stdout.
func manifestFlags(role string, o *manifestOptions, stdout io.Writer) *flag.FlagSet {
	configDir, configFile, kubeconfig, adminPort := "/run/nlb", "", "/run/nlb/kubeconfig", 9902
	if role == roleController {
		configDir, configFile, kubeconfig, adminPort = "/etc/k0s", "k0s.yaml", controllerKubeconfig, 9647
	}
	fs := newFlagSet("manifest "+role, manifestUsage, stdout)
	fs.StringVar(&o.image, "image", "", "container `image` (default ghcr.io/nlb-dev/nlb:<nlb version>)")
	fs.StringVar(&o.pullPolicy, "image-pull-policy", string(podspec.PullIfNotPresent), "imagePullPolicy: Always, IfNotPresent or Never")
	fs.StringVar(&o.namespace, "namespace", "kube-system", "pod `namespace`")
	fs.StringVar(&o.configDir, "config-dir", configDir, "host `directory` with the configuration, mounted read-only at the same path")
	fs.StringVar(&o.configFile, "config-file", configFile, "configuration file `name` in --config-dir, passed as --config (empty: none)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", kubeconfig, "host kubeconfig `file`, passed as --kubeconfig and mounted read-only at the same path unless in --config-dir (empty: none)")
	fs.StringVar(&o.cacheDir, "cache-dir", "", "worker: host `directory` (created if missing, writable, must be writable by --user) for the API server cache kept across pod re-creations (empty: an emptyDir)")
	fs.Func("mount", "more host `path`s to mount read-only at the same path, e.g. the certificates a kubeconfig names (repeatable)", func(v string) error {
		o.mounts = append(o.mounts, v)
		return nil
	})
	fs.IntVar(&o.adminPort, "admin-port", adminPort, "admin server `port` on 127.0.0.1 (/healthz liveness probe, /metrics)")
	fs.Int64Var(&o.uid, "user", nonRootUID, "worker: user and group `id` (non-zero; must be able to read the mounted files)")
	fs.Int64Var(&o.gracePeriod, "termination-grace-period", 30, "terminationGracePeriodSeconds")
	fs.Func("arg", "extra container `argument` (repeatable)", func(v string) error {
		o.extraArgs = append(o.extraArgs, v)
		return nil
	})
	fs.StringVar(&o.target, "for", targetK0s, "the cluster the pod is for: k0s, or kubeadm (controller only: /etc/kubernetes/manifests, see README \"kubeadm\")")
	fs.IntVar(&o.apiPort, "api-port", 6443, "--for kubeadm: the local API server's `port` (kubeadm's localAPIEndpoint.bindPort), health-checked and the proxy's first backend on 127.0.0.1")
	return fs
}

// renderManifest returns o's static pod as YAML, without the fields an
// object read back from the API server would carry (creationTimestamp,
// status).
func renderManifest(o *manifestOptions) ([]byte, error) {
	pod, err := buildPod(o)
	if err != nil {
		return nil, err
	}
	j, err := json.Marshal(pod)
	if err != nil {
		return nil, fmt.Errorf("manifest: encode: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, fmt.Errorf("manifest: encode: %w", err)
	}
	delete(m, "status")
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	out, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("manifest: encode: %w", err)
	}
	return out, nil
}

// buildPod returns o's static pod.
func buildPod(o *manifestOptions) (*podspec.Pod, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	controller := o.role == roleController
	name, component, subcommand := "nllb", "nllb", "client"
	if controller {
		name, component, subcommand = "cplb", "cplb", "controller"
	}
	if o.target == targetKubeadm {
		name = kubeadmPodName
	}
	image := o.image
	if image == "" {
		image = "ghcr.io/nlb-dev/nlb:" + imageTag(o.version)
	}
	args := []string{subcommand}
	if o.configFile != "" {
		args = append(args, "--config", path.Join(o.configDir, o.configFile))
	}
	args = append(args, "--admin", "127.0.0.1:"+strconv.Itoa(o.adminPort))
	mounts := []podspec.VolumeMount{{Name: "config", MountPath: o.configDir, ReadOnly: true}}
	volumes := []podspec.Volume{hostPathVolume("config", o.configDir, podspec.HostPathDirectory)}
	if o.kubeconfig != "" {
		args = append(args, "--kubeconfig", o.kubeconfig)
		if !strings.HasPrefix(o.kubeconfig, o.configDir+"/") {
			mounts = append(mounts, podspec.VolumeMount{Name: "kubeconfig", MountPath: o.kubeconfig, ReadOnly: true})
			volumes = append(volumes, hostPathVolume("kubeconfig", o.kubeconfig, podspec.HostPathFile))
		}
	}
	if !controller {
		// The only writable mount: 'nlb client' caches the API servers it
		// discovered, to start from them after a restart.
		args = append(args, "--cache-file", path.Join(workerCacheDir, "apiservers"))
		mounts = append(mounts, podspec.VolumeMount{Name: "cache", MountPath: workerCacheDir})
		cache := podspec.Volume{Name: "cache", VolumeSource: podspec.VolumeSource{EmptyDir: &podspec.EmptyDirVolumeSource{}}}
		if o.cacheDir != "" {
			cache = hostPathVolume("cache", o.cacheDir, podspec.HostPathDirectoryOrCreate)
		}
		volumes = append(volumes, cache)
	}
	for i, m := range o.mounts {
		name := "host-" + strconv.Itoa(i)
		mounts = append(mounts, podspec.VolumeMount{Name: name, MountPath: m, ReadOnly: true})
		volumes = append(volumes, hostPathVolume(name, m, ""))
	}
	args = append(args, o.targetArgs()...)
	args = append(args, o.extraArgs...)

	sc := &podspec.SecurityContext{
		Privileged:               ptr(false),
		AllowPrivilegeEscalation: ptr(false),
		ReadOnlyRootFilesystem:   ptr(true),
		Capabilities:             &podspec.Capabilities{Drop: []podspec.Capability{"ALL"}},
	}
	podSC := &podspec.PodSecurityContext{
		SeccompProfile: &podspec.SeccompProfile{Type: podspec.SeccompProfileTypeRuntimeDefault},
	}
	cpuMilli := int64(10)
	if controller {
		// Root with three capabilities: added capabilities reach only uid
		// 0's effective set (no ambient capabilities in Kubernetes). BPF
		// (with NET_ADMIN) loads and attaches the sk_lookup program.
		sc.Capabilities.Add = []podspec.Capability{"NET_ADMIN", "NET_RAW", "BPF"}
		sc.RunAsUser, sc.RunAsGroup, sc.RunAsNonRoot = ptr(int64(0)), ptr(int64(0)), ptr(false)
		cpuMilli = 20
	} else {
		sc.RunAsUser, sc.RunAsGroup, sc.RunAsNonRoot = ptr(o.uid), ptr(o.uid), ptr(true)
		podSC.RunAsNonRoot = ptr(true)
	}

	port := int32(o.adminPort)
	pod := &podspec.Pod{
		APIVersion: "v1",
		Kind:       "Pod",
		Metadata: podspec.ObjectMeta{
			Name:      name,
			Namespace: o.namespace,
			Labels: map[string]string{
				"app.kubernetes.io/name":       "k0s",
				"app.kubernetes.io/component":  component,
				"app.kubernetes.io/managed-by": "k0s",
				"app.kubernetes.io/version":    labelValue(o.version),
				"app.kubernetes.io/part-of":    "nlb",
			},
		},
		Spec: podspec.PodSpec{
			HostNetwork: true,
			// The node's resolver: cluster DNS needs the API server this
			// pod may be the way to.
			DNSPolicy:                     podspec.DNSDefault,
			PriorityClassName:             systemNodeCritical,
			Priority:                      ptr(systemNodeCriticalValue),
			Tolerations:                   []podspec.Toleration{{Operator: podspec.TolerationOpExists}},
			TerminationGracePeriodSeconds: ptr(o.gracePeriod),
			AutomountServiceAccountToken:  ptr(false),
			EnableServiceLinks:            ptr(false),
			RestartPolicy:                 podspec.RestartPolicyAlways,
			SecurityContext:               podSC,
			Volumes:                       volumes,
			Containers: []podspec.Container{{
				Name:            name,
				Image:           image,
				ImagePullPolicy: podspec.PullPolicy(o.pullPolicy),
				Args:            args,
				Ports: []podspec.ContainerPort{{
					Name: "admin", ContainerPort: port, HostPort: port, Protocol: podspec.ProtocolTCP,
				}},
				Resources: podspec.ResourceRequirements{Requests: podspec.ResourceList{
					podspec.ResourceCPU:    strconv.FormatInt(cpuMilli, 10) + "m",
					podspec.ResourceMemory: "32Mi",
				}},
				VolumeMounts: mounts,
				LivenessProbe: &podspec.Probe{
					ProbeHandler: podspec.ProbeHandler{HTTPGet: &podspec.HTTPGetAction{
						Host:   "127.0.0.1",
						Path:   "/healthz",
						Port:   port,
						Scheme: podspec.URISchemeHTTP,
					}},
					PeriodSeconds:    10,
					TimeoutSeconds:   3,
					FailureThreshold: 3,
					SuccessThreshold: 1,
				},
				SecurityContext:          sc,
				TerminationMessagePolicy: podspec.TerminationMessageFallbackToLogsOnError,
			}},
		},
	}
	o.targetLabels(pod)
	return pod, nil
}

// validate checks the options that would make an invalid or unsafe pod.
func (o *manifestOptions) validate() error {
	var errs []error
	if o.role != roleController && o.role != roleWorker {
		errs = append(errs, fmt.Errorf("role %q: want controller or worker", o.role))
	}
	if !cleanAbs(o.configDir) {
		errs = append(errs, fmt.Errorf("--config-dir %q: want a clean absolute path below /", o.configDir))
	}
	if strings.Contains(o.configFile, "/") || o.configFile == "." || o.configFile == ".." {
		errs = append(errs, fmt.Errorf("--config-file %q: want a file name", o.configFile))
	}
	if o.role == roleWorker && o.kubeconfig == "" {
		errs = append(errs, errors.New("--kubeconfig: 'nlb client' needs one"))
	}
	for _, p := range []struct{ flag, path string }{{"--kubeconfig", o.kubeconfig}, {"--cache-dir", o.cacheDir}} {
		if p.path != "" && !cleanAbs(p.path) {
			errs = append(errs, fmt.Errorf("%s %q: want a clean absolute path below /", p.flag, p.path))
		}
	}
	if o.role == roleController && o.cacheDir != "" {
		errs = append(errs, errors.New("--cache-dir: worker only"))
	}
	for _, m := range o.mounts {
		if !cleanAbs(m) {
			errs = append(errs, fmt.Errorf("--mount %q: want a clean absolute path below /", m))
		}
	}
	if o.adminPort < 1 || o.adminPort > 65535 {
		errs = append(errs, fmt.Errorf("--admin-port %d: want 1-65535", o.adminPort))
	}
	if o.role == roleWorker && o.uid <= 0 {
		errs = append(errs, fmt.Errorf("--user %d: the worker runs as a non-root user", o.uid))
	}
	if o.gracePeriod < 0 {
		errs = append(errs, fmt.Errorf("--termination-grace-period %d: want >= 0", o.gracePeriod))
	}
	switch podspec.PullPolicy(o.pullPolicy) {
	case podspec.PullAlways, podspec.PullIfNotPresent, podspec.PullNever:
	default:
		errs = append(errs, fmt.Errorf("--image-pull-policy %q: want Always, IfNotPresent or Never", o.pullPolicy))
	}
	if o.role == roleController && o.uidSet {
		errs = append(errs, errors.New("--user: worker only: the controller runs as root, the only user a "+
			"container runtime gives the added capabilities to"))
	}
	if !isDNS1123Label(o.namespace) {
		errs = append(errs, fmt.Errorf("--namespace %q: want a namespace name (DNS-1123 label): at most 63 "+
			"lower-case letters, digits and '-', starting and ending with a letter or digit", o.namespace))
	}
	if o.image != "" {
		if err := checkImageReference(o.image); err != nil {
			errs = append(errs, fmt.Errorf("--image %q: %w", o.image, err))
		}
	}
	errs = append(errs, o.validateTarget()...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	return nil
}

// isDNS1123Label reports whether s is a DNS-1123 label, the form of a
// namespace name (k8s.io/apimachinery validation.IsDNS1123Label).
func isDNS1123Label(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// checkImageReference checks an image reference against the grammar of
// the distribution project (github.com/distribution/reference, which
// container runtimes parse image names with):
//
//	reference        := name [ ":" tag ] [ "@" digest ]
//	name             := [domain '/'] remote-name   (at most 255 characters)
//	domain           := host [':' port-number]
//	remote-name      := path-component ['/' path-component]*
//	path-component   := [a-z0-9]+ ([_.]|__|[-]+ [a-z0-9]+)*
//	tag              := [\w][\w.-]{0,127}
//	digest           := algorithm ":" hex (at least 32 hex digits)
func checkImageReference(ref string) error {
	const (
		domainComponent = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
		host            = `(?:` + domainComponent + `(?:\.` + domainComponent + `)*|\[[a-fA-F0-9:]+\])`
		domain          = host + `(?::[0-9]+)?`
		pathComponent   = `[a-z0-9]+(?:(?:[_.]|__|-+)[a-z0-9]+)*`
		name            = `(?:` + domain + `/)?` + pathComponent + `(?:/` + pathComponent + `)*`
		tag             = `[\w][\w.-]{0,127}`
		digest          = `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`
	)
	m := regexp.MustCompile(`^(` + name + `)(?::` + tag + `)?(?:@` + digest + `)?$`).FindStringSubmatch(ref)
	switch {
	case m == nil:
		return errors.New("not an image reference: want [registry[:port]/]repository[:tag][@digest], " +
			"the repository in lower case, e.g. ghcr.io/nlb-dev/nlb:v1.0.0")
	case len(m[1]) > 255:
		return errors.New("the repository name is longer than 255 characters")
	}
	return nil
}

// cleanAbs reports whether p is a clean absolute path other than "/".
func cleanAbs(p string) bool {
	return path.IsAbs(p) && path.Clean(p) == p && p != "/"
}

// hostPathVolume is a hostPath volume of type t (empty: no check).
func hostPathVolume(name, hostPath string, t podspec.HostPathType) podspec.Volume {
	src := &podspec.HostPathVolumeSource{Path: hostPath}
	if t != "" {
		src.Type = ptr(t)
	}
	return podspec.Volume{Name: name, VolumeSource: podspec.VolumeSource{HostPath: src}}
}

// labelValue makes v a valid label value: at most 63 characters of
// [A-Za-z0-9._-], starting and ending alphanumeric ("v1.2.3+k0s.0" becomes
// "v1.2.3-k0s.0").
func labelValue(v string) string {
	return sanitize(v, 63)
}

// imageTag makes v a valid image tag (at most 128 characters of
// [A-Za-z0-9._-], not starting with '.' or '-'); "dev" when nothing is left.
func imageTag(v string) string {
	if t := sanitize(v, 128); t != "" {
		return t
	}
	return "dev"
}

// sanitize replaces every character outside [A-Za-z0-9._-] with '-', cuts
// the result to max bytes and trims non-alphanumerics from both ends.
func sanitize(v string, max int) string {
	b := []byte(v)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > max {
		b = b[:max]
	}
	alnum := func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}
	return strings.TrimFunc(string(b), alnum)
}

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }
