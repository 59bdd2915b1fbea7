package ui

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Config is the dashboard's part of a process's configuration (the
// publisher's and `redis-keda ui`'s), read from the environment.
type Config struct {
	// Addr is where the dashboard listens: loopback by default, so that in
	// a pod only `kubectl port-forward` (the cluster's RBAC) reaches it.
	// "off" serves nothing (the publisher only).
	Addr string `env:"UI_ADDR" envDefault:"127.0.0.1:8081"`
	// ReadOnly shows no buttons and refuses every POST (403).
	ReadOnly bool `env:"UI_READ_ONLY" envDefault:"false"`
	// Basic authentication: both or neither; the password from the
	// variable or from a file (a mounted Secret).
	Username     string `env:"UI_USERNAME"`
	Password     string `env:"UI_PASSWORD"`
	PasswordFile string `env:"UI_PASSWORD_FILE"`
	// Bearer token (Authorization: Bearer ...), from the variable or a file.
	Token     string `env:"UI_TOKEN"`
	TokenFile string `env:"UI_TOKEN_FILE"`
	// AllowedHosts are the Host header names accepted besides localhost,
	// 127.0.0.1, ::1 and the listen address's host (against DNS
	// rebinding): the ingress's name when the dashboard is exposed.
	AllowedHosts []string `env:"UI_ALLOWED_HOSTS" envSeparator:","`
	// PageSize is the entries per list page.
	PageSize int `env:"UI_PAGE_SIZE" envDefault:"50"`
	// SearchLimit bounds the entries a search looks at, per state.
	SearchLimit int `env:"UI_SEARCH_LIMIT" envDefault:"1000"`
	// Refresh is the overview's refresh period in the browser.
	Refresh time.Duration `env:"UI_REFRESH" envDefault:"5s"`
}

// Enabled reports whether the dashboard is served: UI_ADDR is not "off"
// (nor empty, as in a Config made in code).
func (c *Config) Enabled() bool { return c.Addr != "off" && c.Addr != "" }

// Validate reports the first unusable setting, naming its variable. It
// never shows a credential.
func (c *Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("UI_ADDR=%q is not host:port, such as 127.0.0.1:8081 (or off)", c.Addr)
	}
	switch {
	case c.Password != "" && c.PasswordFile != "":
		return errors.New("UI_PASSWORD and UI_PASSWORD_FILE are both set; set one")
	case c.Token != "" && c.TokenFile != "":
		return errors.New("UI_TOKEN and UI_TOKEN_FILE are both set; set one")
	case c.Username != "" && c.Password == "" && c.PasswordFile == "":
		return errors.New("UI_USERNAME is set without UI_PASSWORD or UI_PASSWORD_FILE; set one, or unset UI_USERNAME")
	case c.Username == "" && (c.Password != "" || c.PasswordFile != ""):
		return errors.New("UI_PASSWORD (or UI_PASSWORD_FILE) is set without UI_USERNAME; set UI_USERNAME")
	case c.PageSize < 1 || c.PageSize > 500:
		return fmt.Errorf("UI_PAGE_SIZE=%d must be from 1 to 500", c.PageSize)
	case c.SearchLimit < 1 || c.SearchLimit > 1_000_000:
		return fmt.Errorf("UI_SEARCH_LIMIT=%d must be from 1 to 1000000", c.SearchLimit)
	case c.Refresh < time.Second:
		return fmt.Errorf("UI_REFRESH=%s must be at least 1s", c.Refresh)
	}
	for _, h := range c.AllowedHosts {
		if strings.TrimSpace(h) == "" || strings.ContainsAny(h, "/ ") {
			return fmt.Errorf("UI_ALLOWED_HOSTS holds %q: give host names (no port, no scheme), comma-separated", h)
		}
	}
	return nil
}

// credentials reads the password and token, from their files when set.
// Errors name the file, never its content.
func (c *Config) credentials() (password, token string, err error) {
	password, token = c.Password, c.Token
	read := func(name, path string) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("%s=%s is empty", name, path)
		}
		return v, nil
	}
	if c.PasswordFile != "" {
		if password, err = read("UI_PASSWORD_FILE", c.PasswordFile); err != nil {
			return "", "", err
		}
	}
	if c.TokenFile != "" {
		if token, err = read("UI_TOKEN_FILE", c.TokenFile); err != nil {
			return "", "", err
		}
	}
	return password, token, nil
}
