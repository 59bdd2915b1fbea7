package queue

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisConfig is how both binaries reach Redis.
type RedisConfig struct {
	Addr     string `env:"REDIS_ADDR" envDefault:"localhost:6379"`
	Username string `env:"REDIS_USERNAME"`
	Password string `env:"REDIS_PASSWORD"` // never logged: see String
	DB       int    `env:"REDIS_DB" envDefault:"0"`
	TLS      bool   `env:"REDIS_TLS" envDefault:"false"`
	// TLSCAFile is a PEM bundle of CAs to trust besides the system ones
	// (managed Redis with a private CA).
	TLSCAFile string `env:"REDIS_TLS_CA_FILE"`
}

// Validate reports the first unusable setting, naming its variable.
func (c RedisConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("%w: REDIS_ADDR=%q is not host:port, such as localhost:6379 (%v)", ErrInvalidConfig, c.Addr, err)
	}
	if c.DB < 0 {
		return fmt.Errorf("%w: REDIS_DB=%d must be 0 or more", ErrInvalidConfig, c.DB)
	}
	if c.TLSCAFile != "" && !c.TLS {
		return fmt.Errorf("%w: REDIS_TLS_CA_FILE is set but REDIS_TLS is false; set REDIS_TLS=true", ErrInvalidConfig)
	}
	return nil
}

// String describes the connection without the password.
func (c RedisConfig) String() string {
	auth := "no password"
	if c.Password != "" {
		auth = "password set"
	}
	return fmt.Sprintf("redis://%s/%d user=%q %s tls=%t", c.Addr, c.DB, c.Username, auth, c.TLS)
}

// NewClient returns a go-redis client for the configuration. It does not
// connect: the first command does.
func (c RedisConfig) NewClient() (*redis.Client, error) {
	opt := &redis.Options{
		Addr:         c.Addr,
		Username:     c.Username,
		Password:     c.Password,
		DB:           c.DB,
		DialTimeout:  5 * time.Second,
		ReadTimeout:  5 * time.Second, // blocking commands add their own timeout to this
		WriteTimeout: 5 * time.Second,
		// No automatic resend: after a read timeout go-redis cannot know
		// whether LPUSH or a script ran, and resending would run it twice.
		// The queue retries what is safe to retry (claims keep their token,
		// scripts are idempotent per token, the publisher re-sends the same
		// ids).
		MaxRetries: -1,
	}
	if c.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if host, _, err := net.SplitHostPort(c.Addr); err == nil {
			tc.ServerName = host
		}
		if c.TLSCAFile != "" {
			pem, err := os.ReadFile(c.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("read REDIS_TLS_CA_FILE: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%w: REDIS_TLS_CA_FILE=%s holds no PEM certificate", ErrInvalidConfig, c.TLSCAFile)
			}
			tc.RootCAs = pool
		}
		opt.TLSConfig = tc
	}
	return redis.NewClient(opt), nil
}
