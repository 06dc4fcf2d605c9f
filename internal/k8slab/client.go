package k8slab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
)

// Identity is a client certificate the cluster issued.
type Identity int

// The identities of a cluster.
const (
	// Admin is user AdminUser in group system:masters: it may do anything.
	Admin Identity = iota
	// Worker is user WorkerUser in group system:nodes, as a kubelet's
	// certificate would be. Start grants it get, list and watch on
	// EndpointSlices, Endpoints and Services in `default` and on
	// ConfigMaps in TestNamespace, and nothing else beyond the defaults
	// for authenticated users.
	Worker
)

func (id Identity) String() string {
	switch id {
	case Admin:
		return "admin"
	case Worker:
		return "worker"
	}
	return "identity-" + strconv.Itoa(int(id))
}

func (c *Cluster) keyPair(id Identity) keyPair {
	if id == Worker {
		return c.worker
	}
	return c.admin
}

// Kubeconfig writes a kubeconfig for identity id that talks to server (for
// example https://192.0.2.11:6443, or the local address `nlb client`
// listens on) and trusts the cluster CA, and returns its path. The file
// names the CA, certificate and key files rather than embedding them.
func (c *Cluster) Kubeconfig(id Identity, server string) (string, error) {
	kp := c.keyPair(id)
	sum := sha256.Sum256([]byte(server))
	path := filepath.Join(c.Dir, fmt.Sprintf("%s-%s.kubeconfig", id, hex.EncodeToString(sum[:4])))
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["lab"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: c.CAFile}
	cfg.AuthInfos[id.String()] = &clientcmdapi.AuthInfo{ClientCertificate: kp.Cert, ClientKey: kp.Key}
	cfg.Contexts["lab"] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: id.String()}
	cfg.CurrentContext = "lab"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("k8slab: write kubeconfig: %w", err)
	}
	return path, nil
}

// WorkerKubeconfig is Kubeconfig(Worker, server).
func (c *Cluster) WorkerKubeconfig(server string) (string, error) {
	return c.Kubeconfig(Worker, server)
}

// RESTConfig returns a client configuration for identity id talking to
// server, whose connections are opened in from's namespace (the test
// process itself cannot reach lab addresses).
func (c *Cluster) RESTConfig(id Identity, from *netlab.Host, server string) *rest.Config {
	kp := c.keyPair(id)
	return &rest.Config{
		Host: server,
		TLSClientConfig: rest.TLSClientConfig{
			CAFile: c.CAFile, CertFile: kp.Cert, KeyFile: kp.Key,
		},
		Dial:    from.Dialer(3 * time.Second),
		Timeout: 10 * time.Second,
		QPS:     50,
		Burst:   100,
	}
}

// Client returns a clientset for identity id talking to server from
// from's namespace.
func (c *Cluster) Client(id Identity, from *netlab.Host, server string) (*kubernetes.Clientset, error) {
	cs, err := kubernetes.NewForConfig(c.RESTConfig(id, from, server))
	if err != nil {
		return nil, fmt.Errorf("k8slab: client: %w", err)
	}
	return cs, nil
}

// APIEndpoints returns the addresses and port named "https" that the
// `kubernetes` EndpointSlices in `default` list, sorted, asking the first
// controller whose process runs and that answers, from the etcd host (which
// tests leave connected).
func (c *Cluster) APIEndpoints(ctx context.Context) ([]netip.AddrPort, error) {
	var lastErr error
	for _, ctl := range c.Controllers {
		if !ctl.Running() {
			continue
		}
		cs, err := c.Client(Admin, c.EtcdHost, ctl.Server)
		if err != nil {
			return nil, err
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		eps, err := KubernetesEndpoints(actx, cs)
		cancel()
		if err == nil {
			return eps, nil
		}
		lastErr = err
	}
	if lastErr == nil {
		return nil, fmt.Errorf("k8slab: no API server is running")
	}
	return nil, lastErr
}

// KubernetesEndpoints lists the `kubernetes` EndpointSlices in `default`
// through cs and returns their ready addresses with the port named "https",
// sorted.
func KubernetesEndpoints(ctx context.Context, cs kubernetes.Interface) ([]netip.AddrPort, error) {
	list, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kubernetes"})
	if err != nil {
		return nil, fmt.Errorf("k8slab: list endpointslices: %w", err)
	}
	var out []netip.AddrPort
	for _, s := range list.Items {
		var port uint16
		for _, p := range s.Ports {
			if p.Name != nil && *p.Name == "https" && p.Port != nil {
				port = uint16(*p.Port)
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				ip, err := netip.ParseAddr(a)
				if err != nil {
					return nil, fmt.Errorf("k8slab: endpointslice %s: %w", s.Name, err)
				}
				out = append(out, netip.AddrPortFrom(ip, port))
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return out, nil
}

// WaitAPIEndpoints polls APIEndpoints every 500 ms until it lists exactly
// the given controllers' addresses on APIServerPort, or ctx ends.
func (c *Cluster) WaitAPIEndpoints(ctx context.Context, want ...*Controller) ([]netip.AddrPort, error) {
	var exp []netip.AddrPort
	for _, ctl := range want {
		exp = append(exp, netip.AddrPortFrom(ctl.Addr, APIServerPort))
	}
	slices.SortFunc(exp, func(a, b netip.AddrPort) int { return a.Compare(b) })
	var got []netip.AddrPort
	err := nlbtest.Poll(ctx, 500*time.Millisecond, "k8slab: kubernetes endpoints", func() error {
		var err error
		if got, err = c.APIEndpoints(ctx); err != nil {
			return err
		}
		if !slices.Equal(got, exp) {
			return fmt.Errorf("endpoints %v, want %v", got, exp)
		}
		return nil
	})
	return got, err
}
