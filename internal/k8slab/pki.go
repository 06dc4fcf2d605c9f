package k8slab

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/nlb-dev/nlb/internal/nlbtest"
)

// pki is the cluster's throw-away certificate authority (nlbtest.CA) whose
// files live in dir.
type pki struct {
	dir    string
	ca     *nlbtest.CA
	caFile string
}

// keyPair names a certificate and its private key on disk.
type keyPair struct {
	Cert, Key string
}

func newPKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("k8slab: %w", err)
	}
	ca, err := nlbtest.NewCA("nlb-e2e-ca")
	if err != nil {
		return nil, fmt.Errorf("k8slab: %w", err)
	}
	p := &pki{dir: dir, ca: ca, caFile: filepath.Join(dir, "ca.crt")}
	if err := ca.WriteFile(p.caFile); err != nil {
		return nil, fmt.Errorf("k8slab: %w", err)
	}
	return p, nil
}

// serving issues a server certificate for the given DNS names and addresses.
func (p *pki) serving(name string, dns []string, ips []net.IP) (keyPair, error) {
	leaf, err := p.ca.Server(name, dns, ips...)
	if err != nil {
		return keyPair{}, fmt.Errorf("k8slab: %w", err)
	}
	return p.write(name, leaf)
}

// client issues a client certificate: Kubernetes takes the user from the
// common name and the groups from the organizations.
func (p *pki) client(name, user string, groups ...string) (keyPair, error) {
	leaf, err := p.ca.Client(user, groups...)
	if err != nil {
		return keyPair{}, fmt.Errorf("k8slab: %w", err)
	}
	return p.write(name, leaf)
}

func (p *pki) write(name string, leaf *nlbtest.Leaf) (keyPair, error) {
	kp := keyPair{Cert: filepath.Join(p.dir, name+".crt"), Key: filepath.Join(p.dir, name+".key")}
	if err := leaf.WriteFiles(kp.Cert, kp.Key); err != nil {
		return keyPair{}, fmt.Errorf("k8slab: %w", err)
	}
	return kp, nil
}

// serviceAccountKeys writes the key pair that signs and verifies service
// account tokens: Key is the private key, Cert the public key.
func (p *pki) serviceAccountKeys() (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, fmt.Errorf("k8slab: service account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return keyPair{}, fmt.Errorf("k8slab: service account key: %w", err)
	}
	kp := keyPair{Cert: filepath.Join(p.dir, "sa.pub"), Key: filepath.Join(p.dir, "sa.key")}
	if err := writePEM(kp.Cert, "PUBLIC KEY", pub); err != nil {
		return keyPair{}, err
	}
	if err := writeECKey(kp.Key, key); err != nil {
		return keyPair{}, err
	}
	return kp, nil
}

func writeECKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("k8slab: %w", err)
	}
	return writePEM(path, "EC PRIVATE KEY", der)
}

func writePEM(path, typ string, der []byte) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("k8slab: %w", err)
	}
	return nil
}
