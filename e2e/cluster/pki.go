package cluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki holds the paths of a fresh, throw-away PKI made in-process with
// crypto/x509 (no openssl).
type pki struct {
	Dir string

	CACert string // CA certificate (client CA and serving CA)
	CAKey  string

	ServingCert string // kube-apiserver serving cert
	ServingKey  string

	AdminCert string // client cert, O=system:masters
	AdminKey  string

	SAKey string // service-account signing key (private)
	SAPub string // service-account verification key (public)

	KEDACertDir string // ca.crt, tls.crt, tls.key for the KEDA operator
	KEDACADir   string // ca.crt only: extra CAs KEDA trusts for scaler TLS

	ca *certAuthority // signs further certs (real node: kubelet, kube-proxy)
}

type certAuthority struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	return n, nil
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

func writeKey(path string, k *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

// issue signs a leaf certificate with ca and writes cert and key.
func (ca *certAuthority) issue(certPath, keyPath string, tmpl *x509.Certificate) error {
	k, err := newKey()
	if err != nil {
		return err
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	tmpl.SerialNumber = sn
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(7 * 24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		return fmt.Errorf("sign %s: %w", tmpl.Subject.CommonName, err)
	}
	if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return writeKey(keyPath, k)
}

// newCA makes a self-signed CA and writes its certificate and key.
func newCA(cn, certPath, keyPath string) (*certAuthority, error) {
	caKey, err := newKey()
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("self-sign CA %s: %w", cn, err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse CA %s: %w", cn, err)
	}
	if err := writePEM(certPath, "CERTIFICATE", caDER, 0o644); err != nil {
		return nil, err
	}
	if err := writeKey(keyPath, caKey); err != nil {
		return nil, err
	}
	return &certAuthority{cert: caCert, key: caKey}, nil
}

// ServingTLS is a throw-away private CA and one server certificate it signed,
// as PEM files.
type ServingTLS struct {
	CACert string // ca.crt: what clients must trust
	Cert   string // tls.crt
	Key    string // tls.key
}

// NewServingTLS writes a fresh CA (common name cn) and a server certificate
// for hosts (IP addresses or DNS names) into dir, which it creates. For
// servers a test starts with TLS (e.g. redis-server --tls-port); the CA is
// unrelated to the cluster's.
func NewServingTLS(dir, cn string, hosts ...string) (ServingTLS, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ServingTLS{}, fmt.Errorf("tls dir: %w", err)
	}
	s := ServingTLS{CACert: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key")}
	ca, err := newCA(cn, s.CACert, filepath.Join(dir, "ca.key"))
	if err != nil {
		return ServingTLS{}, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn + "-server"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if err := ca.issue(s.Cert, s.Key, tmpl); err != nil {
		return ServingTLS{}, err
	}
	return s, nil
}

// servingSANs are the names the kube-apiserver and KEDA serving certs cover.
var servingDNS = []string{
	"localhost",
	"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
	"keda-operator", "keda-operator.keda", "keda-operator.keda.svc", "keda-operator.keda.svc.cluster.local",
}

// newPKI writes a CA, the apiserver serving cert, an admin client cert, a
// service-account key pair and the KEDA operator's cert dir under dir. The
// serving certs also cover extraIPs (the real node's IP).
func newPKI(dir string, extraIPs ...net.IP) (*pki, error) {
	p := &pki{
		Dir:         dir,
		CACert:      filepath.Join(dir, "ca.crt"),
		CAKey:       filepath.Join(dir, "ca.key"),
		ServingCert: filepath.Join(dir, "apiserver.crt"),
		ServingKey:  filepath.Join(dir, "apiserver.key"),
		AdminCert:   filepath.Join(dir, "admin.crt"),
		AdminKey:    filepath.Join(dir, "admin.key"),
		SAKey:       filepath.Join(dir, "sa.key"),
		SAPub:       filepath.Join(dir, "sa.pub"),
		KEDACertDir: filepath.Join(dir, "keda"),
		KEDACADir:   filepath.Join(dir, "keda-ca"),
	}
	for _, d := range []string{p.KEDACertDir, p.KEDACADir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("pki dir: %w", err)
		}
	}

	ca, err := newCA("redis-keda-e2e-ca", p.CACert, p.CAKey)
	if err != nil {
		return nil, err
	}
	caDER := ca.cert.Raw
	p.ca = ca

	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.0.0.1")}
	ips = append(ips, extraIPs...)
	if err := ca.issue(p.ServingCert, p.ServingKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    servingDNS,
		IPAddresses: ips,
	}); err != nil {
		return nil, err
	}
	if err := ca.issue(p.AdminCert, p.AdminKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "e2e-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, err
	}
	// KEDA's operator serves gRPC (metrics service) and wants ca.crt/tls.crt/tls.key.
	if err := ca.issue(filepath.Join(p.KEDACertDir, "tls.crt"), filepath.Join(p.KEDACertDir, "tls.key"), &x509.Certificate{
		Subject:     pkix.Name{CommonName: "keda-operator"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    servingDNS,
		IPAddresses: ips,
	}); err != nil {
		return nil, err
	}
	for _, d := range []string{p.KEDACertDir, p.KEDACADir} {
		if err := writePEM(filepath.Join(d, "ca.crt"), "CERTIFICATE", caDER, 0o644); err != nil {
			return nil, err
		}
	}

	saKey, err := newKey()
	if err != nil {
		return nil, err
	}
	if err := writeKey(p.SAKey, saKey); err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("marshal sa pub: %w", err)
	}
	if err := writePEM(p.SAPub, "PUBLIC KEY", pubDER, 0o644); err != nil {
		return nil, err
	}
	return p, nil
}

// issueClient writes <name>.crt/.key in the PKI dir: a client cert for
// user cn in groups orgs.
func (p *pki) issueClient(name, cn string, orgs ...string) (cert, key string, err error) {
	cert, key = filepath.Join(p.Dir, name+".crt"), filepath.Join(p.Dir, name+".key")
	err = p.ca.issue(cert, key, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: orgs},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return cert, key, err
}

// issueServing writes <name>.crt/.key in the PKI dir: a serving cert for
// the given IPs and DNS names.
func (p *pki) issueServing(name, cn string, ips []net.IP, dns []string) (cert, key string, err error) {
	cert, key = filepath.Join(p.Dir, name+".crt"), filepath.Join(p.Dir, name+".key")
	err = p.ca.issue(cert, key, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: ips,
		DNSNames:    dns,
	})
	return cert, key, err
}
