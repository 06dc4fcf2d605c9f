package k8slab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
)

// Addresses and names of every cluster.
const (
	// APIServerPort is the secure port of every API server.
	APIServerPort = 6443
	// EtcdPort is etcd's client port.
	EtcdPort = 2379
	// ServiceCIDR is the service network; the `kubernetes` Service gets
	// its first address, ServiceIP.
	ServiceCIDR = "198.51.100.0/24"
	// ServiceIP is the cluster IP of the `kubernetes` Service.
	ServiceIP = "198.51.100.1"
	// TestNamespace is a namespace Start creates in which the worker
	// identity may get, list and watch ConfigMaps, for client programs
	// that list and watch through `nlb client`.
	TestNamespace = "nlb-e2e"
	// WorkerUser is the user name of the worker's client certificate
	// (in group system:nodes), as a kubelet's would be.
	WorkerUser = "system:node:worker"
	// AdminUser is the user name of the admin client certificate (in group
	// system:masters).
	AdminUser = "nlb-e2e-admin"
)

// Options shape a cluster. The zero value asks for three controllers.
type Options struct {
	// Name labels the lab's namespaces; empty means "k8s".
	Name string
	// APIServer is the kube-apiserver binary (see BuildAPIServer).
	// Required.
	APIServer string
	// Etcd is the etcd binary; empty means "etcd" from PATH (Debian's
	// etcd-server package).
	Etcd string
	// Controllers is the number of API servers, 1 to 10; 0 means 3.
	Controllers int
	// Spares is the number of extra empty hosts after the etcd host.
	Spares int
	// Dir holds the PKI, kubeconfigs, etcd's data and the logs; empty
	// means a new temporary directory that Close removes.
	Dir string
	// ReadyTimeout bounds the wait for etcd and all API servers to be
	// ready; 0 means 2 minutes.
	ReadyTimeout time.Duration
	// APIServerArgs are extra flags for every API server.
	APIServerArgs []string
}

// Cluster is etcd plus the API servers in a namespace lab.
type Cluster struct {
	// Lab is the namespace lab; Lab.Hosts holds every host below.
	Lab *netlab.Lab
	// Controllers are the API servers, on hosts h1, h2, ...
	Controllers []*Controller
	// Worker is an empty host (the one after the controllers) for
	// `nlb client` and client programs.
	Worker *netlab.Host
	// EtcdHost runs etcd; Etcd is the etcd process.
	EtcdHost *netlab.Host
	Etcd     *netlab.Process
	// Spares are extra empty hosts (Options.Spares).
	Spares []*netlab.Host
	// Dir holds everything the cluster writes.
	Dir string
	// CAFile is the cluster CA certificate (PEM): it signed the serving
	// certificates of all API servers and every client certificate.
	CAFile string
	// AdminKubeconfig is a kubeconfig for the admin identity pointing at
	// the first controller.
	AdminKubeconfig string

	admin, worker keyPair
	removeDir     bool
	closeOnce     sync.Once
	closeErr      error
}

// Controller is one API server.
type Controller struct {
	// Name is "apiserver-1", "apiserver-2", ...
	Name string
	// Host is the controller's namespace; Host.LinkDown blackholes it.
	Host *netlab.Host
	// Addr is the API server's advertise address (the host's Addr4).
	Addr netip.Addr
	// Server is the API server's URL, https://Addr:6443.
	Server string
	// Kubeconfig is an admin kubeconfig pointing at Server.
	Kubeconfig string
	// Process is the API server process: Kill, Stop, Start restart it.
	*netlab.Process

	cluster *Cluster
}

// Start builds the lab and starts etcd and the API servers, waits until
// they are all ready, and grants the worker identity its permissions. On
// error everything started is removed again.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.APIServer == "" {
		return nil, errors.New("k8slab: Options.APIServer is required")
	}
	if opts.Controllers == 0 {
		opts.Controllers = 3
	}
	if opts.Controllers < 1 || opts.Controllers > 10 {
		return nil, fmt.Errorf("k8slab: %d controllers, want 1 to 10", opts.Controllers)
	}
	if opts.Etcd == "" {
		opts.Etcd = "etcd"
	}
	etcdPath, err := lookPath(opts.Etcd)
	if err != nil {
		return nil, err
	}
	if opts.Name == "" {
		opts.Name = "k8s"
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 2 * time.Minute
	}
	c := &Cluster{Dir: opts.Dir}
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "nlb-k8slab-"); err != nil {
			return nil, fmt.Errorf("k8slab: %w", err)
		}
		c.removeDir = true
	}
	defer func() {
		if err != nil {
			if ps := c.Processes(); len(ps) > 0 {
				err = fmt.Errorf("%w\n%s", err, c.Tails(30))
			}
			_ = c.Close()
		}
	}()

	hosts := opts.Controllers + 2 + opts.Spares
	if hosts > netlab.MaxHosts {
		return nil, fmt.Errorf("k8slab: %d hosts needed, a lab holds %d", hosts, netlab.MaxHosts)
	}
	if c.Lab, err = netlab.New(opts.Name, netlab.Options{Hosts: hosts}); err != nil {
		return nil, fmt.Errorf("k8slab: %w", err)
	}
	c.Worker = c.Lab.Hosts[opts.Controllers]
	c.EtcdHost = c.Lab.Hosts[opts.Controllers+1]
	c.Spares = c.Lab.Hosts[opts.Controllers+2:]

	p, err := newPKI(filepath.Join(c.Dir, "pki"))
	if err != nil {
		return nil, err
	}
	c.CAFile = p.caFile
	if c.admin, err = p.client("admin", AdminUser, "system:masters"); err != nil {
		return nil, err
	}
	if c.worker, err = p.client("worker", WorkerUser, "system:nodes"); err != nil {
		return nil, err
	}
	sa, err := p.serviceAccountKeys()
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, opts.ReadyTimeout)
	defer cancel()

	// etcd: one member, clients over plain HTTP on the lab segment.
	etcdURL := "http://" + net.JoinHostPort(c.EtcdHost.Addr4.String(), strconv.Itoa(EtcdPort))
	c.Etcd = netlab.NewProcess("etcd", filepath.Join(c.Dir, "etcd.log"), c.EtcdHost, []string{
		etcdPath,
		"--name=nlb-e2e",
		"--data-dir=" + filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=http://127.0.0.1:2380",
		"--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=nlb-e2e=http://127.0.0.1:2380",
		"--initial-cluster-state=new",
	}...)
	if err := c.Etcd.Start(); err != nil {
		return nil, err
	}
	if err := c.waitEtcd(ctx, etcdURL); err != nil {
		return nil, err
	}

	for i := range opts.Controllers {
		h := c.Lab.Hosts[i]
		name := "apiserver-" + strconv.Itoa(i+1)
		serving, err := p.serving(name, []string{
			"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local",
		}, []net.IP{h.Addr4.AsSlice(), net.IPv4(127, 0, 0, 1), net.ParseIP(ServiceIP)})
		if err != nil {
			return nil, err
		}
		ctl := &Controller{
			Name:    name,
			Host:    h,
			Addr:    h.Addr4,
			Server:  "https://" + net.JoinHostPort(h.Addr4.String(), strconv.Itoa(APIServerPort)),
			cluster: c,
		}
		certDir := filepath.Join(c.Dir, name)
		if err := os.MkdirAll(certDir, 0o700); err != nil {
			return nil, fmt.Errorf("k8slab: %w", err)
		}
		argv := append([]string{
			opts.APIServer,
			"--etcd-servers=" + etcdURL,
			"--advertise-address=" + h.Addr4.String(),
			"--bind-address=0.0.0.0",
			"--secure-port=" + strconv.Itoa(APIServerPort),
			"--cert-dir=" + certDir,
			"--tls-cert-file=" + serving.Cert,
			"--tls-private-key-file=" + serving.Key,
			"--client-ca-file=" + p.caFile,
			"--authorization-mode=RBAC",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + sa.Cert,
			"--service-account-signing-key-file=" + sa.Key,
			"--service-cluster-ip-range=" + ServiceCIDR,
			"--endpoint-reconciler-type=lease",
			"--profiling=false",
		}, opts.APIServerArgs...)
		ctl.Process = netlab.NewProcess(name, filepath.Join(c.Dir, name+".log"), h, argv...)
		if ctl.Kubeconfig, err = c.Kubeconfig(Admin, ctl.Server); err != nil {
			return nil, err
		}
		c.Controllers = append(c.Controllers, ctl)
	}
	c.AdminKubeconfig = c.Controllers[0].Kubeconfig
	for _, ctl := range c.Controllers {
		if err := ctl.Process.Start(); err != nil {
			return nil, err
		}
	}
	for _, ctl := range c.Controllers {
		if err := ctl.WaitReady(ctx); err != nil {
			return nil, err
		}
	}
	if err := c.grantWorker(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// lookPath finds a binary in PATH unless name is a path already.
func lookPath(name string) (string, error) {
	if filepath.IsAbs(name) {
		return name, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("k8slab: %s not found (Debian package etcd-server): %w", name, err)
	}
	return p, nil
}

// waitEtcd polls etcd's /health from its own namespace.
func (c *Cluster) waitEtcd(ctx context.Context, url string) error {
	hc := &http.Client{Transport: &http.Transport{DialContext: c.EtcdHost.Dialer(3 * time.Second)}, Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	return nlbtest.Poll(ctx, 200*time.Millisecond, "k8slab: etcd not healthy", func() error {
		if !c.Etcd.Running() {
			return nlbtest.Stop(fmt.Errorf("k8slab: etcd exited:\n%s", c.Etcd.Tail(20)))
		}
		return get(ctx, hc, url+"/health")
	})
}

// WaitReady waits until the API server answers /readyz with 200, asking
// from the controller's own namespace with the admin certificate, so a
// blackholed controller can still be checked. It fails at once if the
// process is not running.
func (ctl *Controller) WaitReady(ctx context.Context) error {
	hc, err := ctl.cluster.httpClient(Admin, ctl.Host)
	if err != nil {
		return err
	}
	defer hc.CloseIdleConnections()
	return nlbtest.Poll(ctx, 250*time.Millisecond, "k8slab: "+ctl.Name+" not ready", func() error {
		if !ctl.Running() {
			return nlbtest.Stop(fmt.Errorf("k8slab: %s is not running:\n%s", ctl.Name, ctl.Tail(30)))
		}
		return get(ctx, hc, ctl.Server+"/readyz")
	})
}

// Restart starts the API server again if it is not running and waits
// until it is ready.
func (ctl *Controller) Restart(ctx context.Context) error {
	if err := ctl.Start(); err != nil {
		return err
	}
	return ctl.WaitReady(ctx)
}

// httpClient returns an HTTP client with identity id that dials from host.
func (c *Cluster) httpClient(id Identity, from *netlab.Host) (*http.Client, error) {
	kp := c.keyPair(id)
	cert, err := tls.LoadX509KeyPair(kp.Cert, kp.Key)
	if err != nil {
		return nil, fmt.Errorf("k8slab: %w", err)
	}
	caPEM, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("k8slab: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			DialContext:     from.Dialer(3 * time.Second),
			TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
		},
	}, nil
}

// get succeeds when url answers 200.
func get(ctx context.Context, hc *http.Client, url string) error {
	_, err := nlbtest.Get(ctx, hc, url)
	return err
}

// Processes returns etcd and every API server process.
func (c *Cluster) Processes() []*netlab.Process {
	var ps []*netlab.Process
	if c.Etcd != nil {
		ps = append(ps, c.Etcd)
	}
	for _, ctl := range c.Controllers {
		ps = append(ps, ctl.Process)
	}
	return ps
}

// Tails returns the last n lines of every process's log, for a failing
// test to print.
func (c *Cluster) Tails(n int) string {
	var s string
	for _, p := range c.Processes() {
		s += fmt.Sprintf("--- %s (%s), last %d lines:\n%s\n", p.Name, p.LogFile, n, p.Tail(n))
	}
	return s
}

// Close kills every process, removes the lab and, if Start created it, the
// directory. It may be called more than once.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		for _, ctl := range c.Controllers {
			errs = append(errs, ctl.Kill())
		}
		if c.Etcd != nil {
			errs = append(errs, c.Etcd.Kill())
		}
		if c.Lab != nil {
			errs = append(errs, c.Lab.Close())
		}
		if c.removeDir {
			errs = append(errs, os.RemoveAll(c.Dir))
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}
