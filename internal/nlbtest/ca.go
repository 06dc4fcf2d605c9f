package nlbtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// CA is a throw-away certificate authority (ECDSA P-256) valid from an
// hour ago for a week, for tests and labs only.
type CA struct {
	// Cert is the CA certificate; CertPEM its PEM encoding.
	Cert    *x509.Certificate
	CertPEM []byte
	key     *ecdsa.PrivateKey
}

// Leaf is a certificate the CA issued, with its private key.
type Leaf struct {
	// Cert is the certificate; CertPEM and KeyPEM the PEM encodings of it
	// and of its private key (SEC 1, "EC PRIVATE KEY").
	Cert            *x509.Certificate
	CertPEM, KeyPEM []byte
	// TLS is the pair for a tls.Config.
	TLS tls.Certificate
}

// NewCA creates a CA whose subject is cn.
func NewCA(cn string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("nlbtest: CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if err := setValidity(tmpl); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("nlbtest: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("nlbtest: CA certificate: %w", err)
	}
	return &CA{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), key: key}, nil
}

// Pool returns a pool that trusts the CA alone.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Server issues a serving certificate for cn, the DNS names and the
// addresses.
func (ca *CA) Server(cn string, dns []string, ips ...net.IP) (*Leaf, error) {
	return ca.Issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dns,
		IPAddresses: ips,
	})
}

// ServerNames is [CA.Server] with the subject alternative names as
// strings, as a kubeconfig or a flag gives them: IP literals become IP
// addresses, the rest DNS names.
func (ca *CA) ServerNames(cn string, names ...string) (*Leaf, error) {
	var dns []string
	var ips []net.IP
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, n)
		}
	}
	return ca.Server(cn, dns, ips...)
}

// Client issues a client certificate. Kubernetes takes the user from the
// common name and the groups from the organizations.
func (ca *CA) Client(user string, groups ...string) (*Leaf, error) {
	return ca.Issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// Issue signs tmpl with a new key; the CA sets its serial number and
// validity.
func (ca *CA) Issue(tmpl *x509.Certificate) (*Leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("nlbtest: key for %s: %w", tmpl.Subject.CommonName, err)
	}
	if err := setValidity(tmpl); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("nlbtest: certificate for %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("nlbtest: certificate for %s: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("nlbtest: key for %s: %w", tmpl.Subject.CommonName, err)
	}
	return &Leaf{
		Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("EC PRIVATE KEY", keyDER),
		TLS: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert},
	}, nil
}

// WriteFiles writes the certificate and the key as PEM files (mode 0600).
func (l *Leaf) WriteFiles(certFile, keyFile string) error {
	if err := os.WriteFile(certFile, l.CertPEM, 0o600); err != nil {
		return fmt.Errorf("nlbtest: %w", err)
	}
	if err := os.WriteFile(keyFile, l.KeyPEM, 0o600); err != nil {
		return fmt.Errorf("nlbtest: %w", err)
	}
	return nil
}

// WriteFile writes the CA certificate as a PEM file (mode 0600).
func (ca *CA) WriteFile(certFile string) error {
	if err := os.WriteFile(certFile, ca.CertPEM, 0o600); err != nil {
		return fmt.Errorf("nlbtest: %w", err)
	}
	return nil
}

// setValidity gives c a random 127-bit serial number (so certificates of
// separate runs and CAs never share one) and a validity from an hour ago
// for a week.
func setValidity(c *x509.Certificate) error {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return fmt.Errorf("nlbtest: serial: %w", err)
	}
	c.SerialNumber = serial
	c.NotBefore = time.Now().Add(-time.Hour)
	c.NotAfter = time.Now().Add(7 * 24 * time.Hour)
	return nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
