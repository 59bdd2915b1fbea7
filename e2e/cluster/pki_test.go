package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func TestPKIChains(t *testing.T) {
	p, err := newPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(p.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("bad CA PEM")
	}
	check := func(cert, key string, usage x509.ExtKeyUsage, dns string) *x509.Certificate {
		t.Helper()
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(kp.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: dns, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Fatalf("%s: %v", cert, err)
		}
		return leaf
	}
	check(p.ServingCert, p.ServingKey, x509.ExtKeyUsageServerAuth, "127.0.0.1")
	check(p.ServingCert, p.ServingKey, x509.ExtKeyUsageServerAuth, "kubernetes.default.svc")
	admin := check(p.AdminCert, p.AdminKey, x509.ExtKeyUsageClientAuth, "")
	if len(admin.Subject.Organization) != 1 || admin.Subject.Organization[0] != "system:masters" {
		t.Fatalf("admin O = %v", admin.Subject.Organization)
	}
	check(filepath.Join(p.KEDACertDir, "tls.crt"), filepath.Join(p.KEDACertDir, "tls.key"), x509.ExtKeyUsageServerAuth, "keda-operator.keda.svc")
	for _, f := range []string{p.SAKey, p.SAPub, filepath.Join(p.KEDACertDir, "ca.crt")} {
		if _, err := os.Stat(f); err != nil {
			t.Fatal(err)
		}
	}
}

func TestServingTLS(t *testing.T) {
	s, err := NewServingTLS(filepath.Join(t.TempDir(), "redis-tls"), "redis-test-ca", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(s.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("bad CA PEM")
	}
	kp, err := tls.LoadX509KeyPair(s.Cert, s.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "redis.example.com"}); err == nil {
		t.Error("certificate verifies for a name it was not issued for")
	}
	other, err := newPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	otherPEM, _ := os.ReadFile(other.CACert)
	otherPool := x509.NewCertPool()
	otherPool.AppendCertsFromPEM(otherPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: otherPool, DNSName: "127.0.0.1"}); err == nil {
		t.Error("the serving certificate chains to an unrelated CA")
	}
}
