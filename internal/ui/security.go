package ui

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"
)

// logHost and logPath are a refused request's fields in the log (zap
// quotes them; no header value besides Host is ever logged).
func logHost(h string) zap.Field        { return zap.String("host", h) }
func logPath(r *http.Request) zap.Field { return zap.String("path", r.URL.Path) }

// Security: every response carries these headers. The page has no inline
// script (the refresh is static/app.js), no inline style, no frame.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: under no-referrer browsers send
	// "Origin: null" with a form's POST, which sameOrigin refuses.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// allowedHosts is the Host header names accepted: localhost's names, the
// listen address's host (unless it is a wildcard), and UI_ALLOWED_HOSTS.
func allowedHosts(c Config) map[string]bool {
	m := map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}
	if h, _, err := net.SplitHostPort(c.Addr); err == nil {
		if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) {
			m[strings.ToLower(h)] = true
		}
	}
	for _, h := range c.AllowedHosts {
		m[strings.ToLower(strings.TrimSpace(h))] = true
	}
	return m
}

// hostName is r.Host without its port and brackets, lower-case.
func hostName(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
}

// digest is what credentials are compared by: equal-length SHA-256 sums,
// in constant time.
func digest(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func equal(a [32]byte, b string) bool {
	d := digest(b)
	return subtle.ConstantTimeCompare(a[:], d[:]) == 1
}

// authorized checks basic auth and the bearer token, when configured
// (either passes). Nothing configured: everyone (the loopback listener and
// the port-forward are then the gate).
func (s *Server) authorized(r *http.Request) bool {
	if !s.basic && !s.bearer {
		return true
	}
	if s.bearer {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && equal(s.token, tok) {
			return true
		}
	}
	if s.basic {
		if u, p, ok := r.BasicAuth(); ok {
			// Both compared, always: no early exit on the user name.
			uok, pok := equal(s.user, u), equal(s.password, p)
			return uok && pok
		}
	}
	return false
}

// sameOrigin refuses a POST whose Origin (or, without one, Referer —
// though the pages send none) names another site than the Host it was
// sent to. The CSRF token is the main defence; this is the second.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return o == "" // "null": a sandboxed or opaque origin
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// guard is the middleware every request passes: security headers, the
// Host check, authentication, then for a POST the read-only mode, the
// origin and the CSRF token.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		if !s.hosts[hostName(r.Host)] {
			s.log.Warn("ui: request refused: Host not allowed (UI_ALLOWED_HOSTS)", logHost(r.Host), logPath(r))
			http.Error(w, "403 forbidden: this Host is not allowed (DNS rebinding guard); add it to UI_ALLOWED_HOSTS if you expose the dashboard under that name", http.StatusForbidden)
			return
		}
		if !s.authorized(r) {
			if s.basic {
				w.Header().Set("WWW-Authenticate", `Basic realm="redis-keda", charset="UTF-8"`)
			}
			http.Error(w, "401 unauthorized: the dashboard requires authentication", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			switch {
			case s.cfg.ReadOnly:
				http.Error(w, "403 forbidden: the dashboard is read-only (UI_READ_ONLY)", http.StatusForbidden)
				return
			case !sameOrigin(r):
				http.Error(w, "403 forbidden: cross-origin request", http.StatusForbidden)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if err := r.ParseForm(); err != nil {
				http.Error(w, "400 bad request: unreadable form", http.StatusBadRequest)
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.csrf)) != 1 {
				http.Error(w, "403 forbidden: missing or wrong CSRF token; reload the page and try again", http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
