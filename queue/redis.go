package queue

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisMode is how redis-keda reaches Redis: one server, a Redis Cluster, or
// a master found through Sentinel.
type RedisMode string

// The accepted values of REDIS_MODE.
const (
	ModeStandalone RedisMode = "standalone"
	ModeCluster    RedisMode = "cluster"
	ModeSentinel   RedisMode = "sentinel"
)

// RedisAddr is REDIS_ADDR as written: host:port, a comma-separated list of
// host:port, or one redis:// or rediss:// URL. It may hold a password (in a
// URL), so it prints masked: String, %v, %q and JSON never show the
// credential. Use string(a) only to connect.
type RedisAddr string

// String returns the address with any password masked.
func (a RedisAddr) String() string { return redactAddr(string(a)) }

// GoString masks like String, for %#v.
func (a RedisAddr) GoString() string { return strconv.Quote(a.String()) }

// MarshalText masks like String, for encoders (JSON logs).
func (a RedisAddr) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// Secret is a password. It never prints: String, %v, %q and JSON show a mask.
// Use string(s) only to connect.
type Secret string

const mask = "xxxxx"

// String returns a mask.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return mask
}

// GoString masks like String, for %#v.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalText masks like String, for encoders (JSON logs).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// RedisConfig is how both binaries reach Redis.
//
// REDIS_ADDR may be a redis:// or rediss:// URL with go-redis's ParseURL
// meaning (user, password, /db, rediss = TLS; more nodes as ?addr=host:port in
// cluster and sentinel mode, as ParseClusterURL and ParseFailoverURL read
// them). In sentinel mode the URL's user and password are the sentinels'
// (ParseFailoverURL), and ?master_name, ?username, ?password are the
// master's. A variable that is set (non-empty) overrides the URL's part.
type RedisConfig struct {
	Mode RedisMode `env:"REDIS_MODE" envDefault:"standalone"`
	// Addr is one server (standalone), seed nodes (cluster) or the
	// sentinels (sentinel).
	Addr     RedisAddr `env:"REDIS_ADDR" envDefault:"localhost:6379"`
	Username string    `env:"REDIS_USERNAME"`
	Password Secret    `env:"REDIS_PASSWORD"`
	// DB and TLS are nil when their variable is not set: the URL's value,
	// else 0 and false.
	DB  *int  `env:"REDIS_DB"`
	TLS *bool `env:"REDIS_TLS"`
	// TLSCAFile is a PEM bundle of CAs to trust besides the system ones
	// (managed Redis with a private CA). It applies to every node and to
	// the sentinels.
	TLSCAFile string `env:"REDIS_TLS_CA_FILE"`

	// SentinelMaster is the master's name as the sentinels know it.
	SentinelMaster   string `env:"REDIS_SENTINEL_MASTER"`
	SentinelUsername string `env:"REDIS_SENTINEL_USERNAME"`
	SentinelPassword Secret `env:"REDIS_SENTINEL_PASSWORD"`

	// Timeout bounds dialing and each command's read and write (a blocking
	// command adds its own block time). Zero means 5s. It is not read from
	// the environment: tests shorten it.
	Timeout time.Duration
}

// redisTarget is a RedisConfig with the URL and the variables merged: what
// the client is built from.
type redisTarget struct {
	mode               RedisMode
	addrs              []string
	username, password string
	db                 int
	tls                bool
	master             string // sentinel only
	sentinelUsername   string
	sentinelPassword   string
}

// addrForm is the accepted form of REDIS_ADDR, for error messages.
const addrForm = "host:port, such as localhost:6379"

// Validate reports the first unusable setting, naming its variable. No
// message holds a password.
func (c RedisConfig) Validate() error {
	_, err := c.resolve()
	return err
}

func redisConfigErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}

// resolve merges REDIS_ADDR (and its URL) with the explicit variables and
// checks the result.
// DefaultUser reports whether the connection authenticates as Redis's
// default user: no ACL username, from REDIS_USERNAME or the URL. A
// least-privilege ACL user (the documented ones) may not run CONFIG GET or
// INFO, and every command it is denied lands in Redis's ACL LOG, which
// operators watch: optional reads such as Persistence are for the default
// user only.
func (c RedisConfig) DefaultUser() bool {
	t, err := c.resolve()
	return err == nil && (t.username == "" || t.username == "default")
}

func (c RedisConfig) resolve() (redisTarget, error) {
	if c.Mode == "" { // a RedisConfig made in code: the variable's default
		c.Mode = ModeStandalone
	}
	t := redisTarget{mode: c.Mode}
	switch c.Mode {
	case ModeStandalone, ModeCluster, ModeSentinel:
	default:
		return t, redisConfigErr("REDIS_MODE=%q is not standalone, cluster or sentinel", string(c.Mode))
	}
	raw := strings.TrimSpace(string(c.Addr))
	shown := c.Addr.String()
	var u *parsedURL
	switch {
	case raw == "":
		return t, redisConfigErr("REDIS_ADDR is empty; set %s", addrForm)
	case strings.Contains(raw, "://"):
		var err error
		if u, err = parseRedisURL(raw, shown, c.Mode); err != nil {
			return t, err
		}
		t.addrs = u.addrs
	default:
		for _, a := range strings.Split(raw, ",") {
			a = strings.TrimSpace(a)
			if a == "" {
				return t, redisConfigErr("REDIS_ADDR=%q has an empty entry; separate host:port entries with single commas", shown)
			}
			if strings.Contains(a, "@") {
				return t, redisConfigErr("REDIS_ADDR=%q has credentials outside a URL; use redis://user:password@host:port or REDIS_USERNAME and REDIS_PASSWORD", shown)
			}
			if reason := checkHostPort(a); reason != "" {
				if a == raw {
					return t, redisConfigErr("REDIS_ADDR=%q is not %s (%s)", shown, addrForm, reason)
				}
				return t, redisConfigErr("REDIS_ADDR=%q: entry %q is not %s (%s)", shown, a, addrForm, reason)
			}
			t.addrs = append(t.addrs, a)
		}
	}
	if c.Mode == ModeStandalone && len(t.addrs) > 1 {
		return t, redisConfigErr("REDIS_ADDR=%q lists %d addresses, REDIS_MODE=standalone takes one; set REDIS_MODE=cluster or REDIS_MODE=sentinel for a list", shown, len(t.addrs))
	}

	// The variables override the URL's parts.
	if u != nil {
		t.username, t.password, t.db, t.tls = u.username, u.password, u.db, u.tls
		t.master, t.sentinelUsername, t.sentinelPassword = u.master, u.sentinelUsername, u.sentinelPassword
	}
	t.username = override(t.username, c.Username)
	t.password = override(t.password, string(c.Password))
	t.sentinelUsername = override(t.sentinelUsername, c.SentinelUsername)
	t.sentinelPassword = override(t.sentinelPassword, string(c.SentinelPassword))
	t.master = override(t.master, c.SentinelMaster)
	if c.DB != nil {
		t.db = *c.DB
		if t.db < 0 {
			return t, redisConfigErr("REDIS_DB=%d must be 0 or more", t.db)
		}
	}
	if c.TLS != nil {
		t.tls = *c.TLS
	}

	switch c.Mode {
	case ModeCluster:
		if t.db != 0 {
			if c.DB != nil {
				return t, redisConfigErr("REDIS_DB=%d must be 0 with REDIS_MODE=cluster: Redis Cluster has only database 0", t.db)
			}
			return t, redisConfigErr("REDIS_ADDR=%q selects database %d, but Redis Cluster has only database 0", shown, t.db)
		}
	case ModeSentinel:
		if t.master == "" {
			return t, redisConfigErr("REDIS_SENTINEL_MASTER is empty; REDIS_MODE=sentinel needs the master's name as the sentinels know it, such as mymaster")
		}
	}
	if c.Mode != ModeSentinel {
		for _, v := range []struct{ name, val string }{
			{"REDIS_SENTINEL_MASTER", c.SentinelMaster},
			{"REDIS_SENTINEL_USERNAME", c.SentinelUsername},
			{"REDIS_SENTINEL_PASSWORD", string(c.SentinelPassword)},
		} {
			if v.val != "" {
				return t, redisConfigErr("%s is set but REDIS_MODE=%s; set REDIS_MODE=sentinel or unset %s", v.name, c.Mode, v.name)
			}
		}
	}
	if c.TLSCAFile != "" && !t.tls {
		return t, redisConfigErr("REDIS_TLS_CA_FILE is set but TLS is off; set REDIS_TLS=true or use a rediss:// URL")
	}
	return t, nil
}

func override(fromURL, fromVar string) string {
	if fromVar != "" {
		return fromVar
	}
	return fromURL
}

// checkHostPort returns why s is not host:port, or "". The reason never
// repeats s.
func checkHostPort(s string) string {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return ae.Err
		}
		return "not host:port"
	}
	return checkPort(port)
}

func checkPort(port string) string {
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "the port must be a number from 1 to 65535"
	}
	return ""
}

// parsedURL is what a REDIS_ADDR URL says.
type parsedURL struct {
	addrs              []string
	username, password string
	db                 int
	tls                bool
	// sentinel mode: the userinfo is the sentinels', the master's
	// credentials are query parameters (go-redis ParseFailoverURL).
	master, sentinelUsername, sentinelPassword string
}

// urlParams are the query parameters a REDIS_ADDR URL may carry in mode:
// go-redis's names, minus client tuning (timeouts, retries, pools), which
// redis-keda fixes.
func urlParams(mode RedisMode) []string {
	switch mode {
	case ModeCluster:
		return []string{"addr"}
	case ModeSentinel:
		return []string{"addr", "db", "master_name", "password", "username"}
	default:
		return []string{"db"}
	}
}

// parseRedisURL reads a redis:// or rediss:// URL with go-redis's meaning
// (ParseURL, ParseClusterURL, ParseFailoverURL). shown is the masked form
// for messages: no message repeats the raw text or url.Parse's error, which
// quotes it.
//
// A '#' anywhere, or an '@' after the host, is refused like a URL that does
// not parse: url.Parse would read "redis://app:Tr0ub@dor#3@host" as host
// "dor", password "Tr0ub" and a fragment, and dial a piece of the password.
func parseRedisURL(raw, shown string, mode RedisMode) (*parsedURL, error) {
	u, err := url.Parse(raw)
	if err != nil || strings.Contains(raw, "#") || strings.Contains(u.RawQuery, "@") || strings.Contains(u.Path, "@") || u.Opaque != "" {
		return nil, redisConfigErr("REDIS_ADDR=%q is not a valid URL such as redis://user:password@host:6379/0 (special characters in the password must be %%-escaped)", shown)
	}
	var p parsedURL
	switch u.Scheme {
	case "redis":
	case "rediss":
		p.tls = true
	default:
		return nil, redisConfigErr("REDIS_ADDR=%q has scheme %q; use redis:// or rediss:// (TLS)", shown, u.Scheme)
	}
	if strings.Contains(u.Host, ",") {
		return nil, redisConfigErr("REDIS_ADDR=%q lists hosts with commas inside a URL; add more nodes as ?addr=host:port, or use a comma-separated host:port list without URL", shown)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = "localhost" // go-redis's defaults
	}
	if port == "" {
		port = "6379"
	} else if reason := checkPort(port); reason != "" {
		return nil, redisConfigErr("REDIS_ADDR=%q: %s", shown, reason)
	}
	p.addrs = []string{net.JoinHostPort(host, port)}

	var user, pass string
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
	}
	if mode == ModeSentinel {
		p.sentinelUsername, p.sentinelPassword = user, pass
	} else {
		p.username, p.password = user, pass
	}

	switch path := strings.FieldsFunc(u.Path, func(r rune) bool { return r == '/' }); len(path) {
	case 0:
	case 1:
		if p.db, err = strconv.Atoi(path[0]); err != nil || p.db < 0 {
			return nil, redisConfigErr("REDIS_ADDR=%q: the path is the database number, such as /0", shown)
		}
	default:
		return nil, redisConfigErr("REDIS_ADDR=%q: the path is the database number, such as /0", shown)
	}

	q := u.Query()
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	slices.Sort(names)
	allowed := urlParams(mode)
	for _, k := range names {
		if !slices.Contains(allowed, k) {
			return nil, redisConfigErr("REDIS_ADDR=%q has query parameter %q; with REDIS_MODE=%s a URL takes only %s", shown, k, mode, strings.Join(allowed, ", "))
		}
	}
	if v, ok := lastParam(q, "db"); ok {
		if p.db, err = strconv.Atoi(v); err != nil || p.db < 0 {
			return nil, redisConfigErr("REDIS_ADDR=%q: db must be a database number, such as db=0", shown)
		}
	}
	for _, a := range q["addr"] {
		if reason := checkHostPort(a); reason != "" {
			return nil, redisConfigErr("REDIS_ADDR=%q: addr=%q is not %s (%s)", shown, a, addrForm, reason)
		}
		p.addrs = append(p.addrs, a)
	}
	if mode == ModeSentinel {
		p.master, _ = lastParam(q, "master_name")
		if v, ok := lastParam(q, "username"); ok {
			p.username = v
		}
		if v, ok := lastParam(q, "password"); ok {
			p.password = v
		}
	}
	return &p, nil
}

// lastParam is the last value of a query parameter, as go-redis reads it.
func lastParam(q url.Values, name string) (string, bool) {
	vs := q[name]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// redactAddr masks every password in a REDIS_ADDR value, parseable or not:
// a URL's userinfo password (up to the last "@", as url.Parse reads it), a
// password= query parameter (up to the next "&": an unescaped "#", "@" or
// "/" may be part of it), and anything before an "@" outside a URL. A byte
// that either reading takes for a password is masked: a refused URL such
// as redis://h:1?password=p@ss shows no piece of it.
func redactAddr(s string) string {
	scheme, rest, isURL := strings.Cut(s, "://")
	if !isURL {
		if at := strings.LastIndex(s, "@"); at >= 0 {
			return mask + s[at:]
		}
		return s
	}
	secret := make([]bool, len(rest))
	hide := func(from, to int) {
		for i := from; i < to; i++ {
			secret[i] = true
		}
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		user, _, hasPass := strings.Cut(rest[:at], ":")
		switch {
		case strings.ContainsAny(user, "/?#"):
			hide(0, at) // not a clean userinfo: mask all of it
		case hasPass:
			hide(len(user)+1, at)
		}
	}
	const param = "password="
	for i := 0; ; {
		j := strings.Index(rest[i:], param)
		if j < 0 {
			break
		}
		start := i + j + len(param)
		if k := i + j; k > 0 && (rest[k-1] == '?' || rest[k-1] == '&') {
			end := strings.IndexByte(rest[start:], '&')
			if end < 0 {
				end = len(rest) - start
			}
			hide(start, start+end)
		}
		i = start
	}
	var b strings.Builder
	b.WriteString(scheme + "://")
	for i := 0; i < len(rest); i++ {
		switch {
		case !secret[i]:
			b.WriteByte(rest[i])
		case i == 0 || !secret[i-1]:
			b.WriteString(mask)
		}
	}
	return b.String()
}

// String describes the connection without any password.
func (c RedisConfig) String() string {
	t, err := c.resolve()
	if err != nil {
		return fmt.Sprintf("%s %s (invalid)", c.Mode, c.Addr)
	}
	set := func(p string) string {
		if p == "" {
			return "none"
		}
		return "set"
	}
	addrs := strings.Join(t.addrs, ",")
	switch t.mode {
	case ModeCluster:
		return fmt.Sprintf("cluster seeds=%s user=%q password=%s tls=%t", addrs, t.username, set(t.password), t.tls)
	case ModeSentinel:
		return fmt.Sprintf("sentinel master=%q sentinels=%s db=%d user=%q password=%s sentinel_user=%q sentinel_password=%s tls=%t",
			t.master, addrs, t.db, t.username, set(t.password), t.sentinelUsername, set(t.sentinelPassword), t.tls)
	default:
		return fmt.Sprintf("standalone %s db=%d user=%q password=%s tls=%t", addrs, t.db, t.username, set(t.password), t.tls)
	}
}

// ErrReplyLost is wrapped by the error of a command that was sent to Redis
// but whose reply never came (read timeout, connection reset, server killed
// mid-command): it may or may not have run. The client never resends such a
// command by itself; the caller decides, knowing whether it is idempotent.
// It is conservative: a new connection whose handshake times out (the
// command was not sent yet) reports it too.
var ErrReplyLost = errors.New("reply lost, the command may have run")

// replyLostError keeps the cause's text but deliberately does not unwrap to
// it: go-redis's cluster client would resend on a network error it can see.
type replyLostError struct {
	cmd   string
	cause string
}

func (e *replyLostError) Error() string {
	return fmt.Sprintf("redis %s: %v: %s", e.cmd, ErrReplyLost, e.cause)
}

func (e *replyLostError) Unwrap() error { return ErrReplyLost }

// dialError marks an error from opening a connection: nothing was sent, so
// go-redis may retry it (another node, another dial).
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// noResend turns errors that leave a command's outcome unknown into
// ErrReplyLost, which go-redis does not retry. Errors that prove the
// command did not run pass through unchanged, so go-redis still follows
// MOVED/ASK, retries READONLY, CLUSTERDOWN, TRYAGAIN, LOADING and dial
// failures.
type noResend struct {
	// nodeDown, when set, is called when the node may be gone (a failed
	// dial, a lost reply): the cluster client then reloads its slot map
	// instead of dialing a dead master until its next periodic reload.
	nodeDown func()
	// standalone: a MOVED or ASK reply means REDIS_ADDR is a Redis Cluster
	// node that does not own the key, which a standalone client can never
	// follow: made a configuration error (permanent) instead of a transient
	// one retried for REDIS_RETRY_TIMEOUT.
	standalone bool
}

func (h noResend) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cn, err := next(ctx, network, addr)
		if err != nil {
			if h.nodeDown != nil {
				h.nodeDown()
			}
			return nil, &dialError{err}
		}
		return cn, nil
	}
}

func (h noResend) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		// HELLO and AUTH are a new connection's handshake (go-redis
		// initConn): their error becomes the error of the command that
		// needed the connection, and is classified there.
		if name := cmd.Name(); name == "hello" || name == "auth" {
			return err
		}
		if replyLost(err) {
			if h.nodeDown != nil {
				h.nodeDown()
			}
			err = &replyLostError{cmd: cmd.Name(), cause: err.Error()}
		}
		if h.standalone && isRedirect(err) {
			err = fmt.Errorf("%w: %s: %w; REDIS_ADDR is a Redis Cluster node that does not serve this key: set REDIS_MODE=cluster",
				ErrInvalidConfig, cmd.Name(), err)
		}
		return err
	}
}

func (noResend) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// isRedirect reports whether err is a cluster redirection reply.
func isRedirect(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	return strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ")
}

// replyLost reports whether err may have come after the command was written.
func replyLost(err error) bool {
	if err == nil {
		return false
	}
	var de *dialError
	var re redis.Error
	var op *net.OpError
	switch {
	case errors.As(err, &de), errors.As(err, &re),
		errors.As(err, &op) && op.Op == "dial",
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolTimeout):
		return false
	}
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne)
}

// defaultTimeout is RedisConfig.Timeout when zero.
const defaultTimeout = 5 * time.Second

// NewClient returns a client for the configuration: a *redis.Client
// (standalone), a *redis.ClusterClient or a Sentinel failover client
// (redis.NewFailoverClient), behind one interface. It does not connect: the
// first command does.
//
// No command is resent automatically once written: go-redis's retries are
// off, and a lost reply is returned as ErrReplyLost. The cluster client
// still follows MOVED and ASK and retries errors that prove the command did
// not run (READONLY, CLUSTERDOWN, TRYAGAIN, LOADING, a failed dial), at most
// 3 times, and reloads its slot map as soon as a node fails to answer (else
// it would dial a dead master until its periodic reload, 60 s). A cluster
// pipeline or transaction may be resent by go-redis after a lost reply: use
// pipelines only for reads.
func (c RedisConfig) NewClient() (redis.UniversalClient, error) {
	t, err := c.resolve()
	if err != nil {
		return nil, err
	}
	var tc *tls.Config
	if t.tls {
		if tc, err = c.tlsConfig(); err != nil {
			return nil, err
		}
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	switch t.mode {
	case ModeCluster:
		rdb := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:        t.addrs,
			Username:     t.username,
			Password:     t.password,
			TLSConfig:    tc,
			Dialer:       dialer(timeout, tc),
			DialTimeout:  timeout,
			ReadTimeout:  timeout,
			WriteTimeout: timeout,
			// A context deadline bounds the command (probes, shutdown).
			ContextTimeoutEnabled: true,
			// One dial per attempt: the callers retry with backoff within
			// REDIS_RETRY_TIMEOUT (go-redis would dial 5 times, 25 s).
			DialerRetries: 1,
			MaxRetries:    -1, // per node: none
			// The cluster loop's attempts: MOVED/ASK and the errors above;
			// noResend keeps lost replies out of it.
			MaxRedirects: 3,
		})
		// ReloadState is asynchronous and coalesced: cheap to call often.
		reload := func() { rdb.ReloadState(context.Background()) }
		rdb.OnNewNode(func(n *redis.Client) { n.AddHook(noResend{nodeDown: reload}) })
		return rdb, nil
	case ModeSentinel:
		rdb := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       t.master,
			SentinelAddrs:    t.addrs,
			SentinelUsername: t.sentinelUsername,
			SentinelPassword: t.sentinelPassword,
			Username:         t.username,
			Password:         t.password,
			DB:               t.db,
			TLSConfig:        tc, // sentinels and data nodes alike
			Dialer:           dialer(timeout, tc),
			DialTimeout:      timeout,
			ReadTimeout:      timeout,
			WriteTimeout:     timeout,
			// A context deadline bounds the command (probes, shutdown).
			ContextTimeoutEnabled: true,
			// One dial per attempt: the callers retry with backoff within
			// REDIS_RETRY_TIMEOUT (go-redis would dial 5 times, 25 s).
			DialerRetries: 1,
			MaxRetries:    -1,
		})
		rdb.AddHook(noResend{})
		return rdb, nil
	default:
		rdb := redis.NewClient(&redis.Options{
			Addr:         t.addrs[0],
			Username:     t.username,
			Password:     t.password,
			DB:           t.db,
			TLSConfig:    tc,
			Dialer:       dialer(timeout, tc),
			DialTimeout:  timeout,
			ReadTimeout:  timeout, // blocking commands add their own timeout to this
			WriteTimeout: timeout,
			// A context deadline bounds the command: /readyz, /metrics and a
			// release within SHUTDOWN_TIMEOUT return on time even when Redis
			// is frozen (go-redis ignores deadlines without this).
			ContextTimeoutEnabled: true,
			// One dial per attempt: the callers retry with backoff within
			// REDIS_RETRY_TIMEOUT (go-redis would dial 5 times, 25 s).
			DialerRetries: 1,
			MaxRetries:    -1,
		})
		rdb.AddHook(noResend{standalone: true})
		return rdb, nil
	}
}

// dialer opens a connection within timeout and the caller's context, the TLS
// handshake included (go-redis's own TLS dialer ignores the context).
func dialer(timeout time.Duration, tc *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	// go-redis's keep-alive: a dead peer is noticed within ~45 s.
	nd := &net.Dialer{Timeout: timeout, KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3}}
	if tc == nil {
		return nd.DialContext
	}
	td := &tls.Dialer{NetDialer: nd, Config: tc}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout) // the handshake too
		defer cancel()
		cn, err := td.DialContext(ctx, network, addr)
		var op *net.OpError
		if err != nil && !errors.As(err, &op) { // connected, but the handshake failed
			return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		return cn, err
	}
}

// Failure wraps err, a failure to use Redis with c, with what to check,
// naming the variables: the message the binaries exit with. retried is how
// long the failure was retried (REDIS_RETRY_TIMEOUT), 0 for an error that
// was not. The queue's own verdicts and configuration errors (which name
// their variable already) are returned as they are. No message holds a
// password.
func (c RedisConfig) Failure(err error, retried time.Duration) error {
	if err == nil || errors.Is(err, ErrInvalidConfig) || errors.Is(err, ErrInvalidEvent) || errors.Is(err, ErrNoEvent) ||
		errors.Is(err, ErrClaimInterrupted) || errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrVanished) ||
		errors.Is(err, ErrPayloadTooLarge) || errors.Is(err, context.Canceled) {
		return err
	}
	t, terr := c.resolve()
	if terr != nil {
		return err
	}
	creds, sentinel := "REDIS_USERNAME and REDIS_PASSWORD", ""
	if t.mode == ModeSentinel {
		sentinel = " (the sentinels': REDIS_SENTINEL_USERNAME and REDIS_SENTINEL_PASSWORD)"
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && IsPermanent(err) {
		msg := rerr.Error()
		var hint string
		switch {
		case strings.HasPrefix(msg, "WRONGPASS"), strings.Contains(msg, "invalid password"),
			strings.Contains(msg, "called without any password configured"):
			hint = "Redis refused the credentials: check " + creds + sentinel
		case strings.HasPrefix(msg, "NOAUTH"):
			hint = "Redis requires a password: set REDIS_PASSWORD (and REDIS_USERNAME for an ACL user)" + sentinel
		case strings.HasPrefix(msg, "NOPERM"):
			hint = fmt.Sprintf("the ACL user %q may not run this: give it the rules in k8s/README.md#redis-acls, or check REDIS_USERNAME", t.username)
		default:
			hint = "check REDIS_ADDR, REDIS_MODE and " + creds
		}
		return fmt.Errorf("redis at %s: %s: %w", c, hint, err)
	}
	var hint string
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	var rhe tls.RecordHeaderError
	switch {
	case t.tls && (errors.As(err, &cve) || errors.As(err, &uae)):
		hint = "the server's TLS certificate is not trusted: set REDIS_TLS_CA_FILE to the CA that signed it, or check REDIS_TLS"
	case t.tls && errors.As(err, &hne):
		hint = "the server's TLS certificate does not name the host dialed: check REDIS_ADDR (use the name the certificate holds)"
	case t.tls && errors.As(err, &rhe):
		hint = "the server did not answer TLS: check REDIS_TLS (the server may be plaintext) and REDIS_ADDR"
	case t.tls:
		hint = "check REDIS_ADDR and that Redis is up and reachable; TLS is on: check REDIS_TLS and REDIS_TLS_CA_FILE too (a plaintext server never completes the TLS handshake)"
	default:
		hint = "check REDIS_ADDR and that Redis is up and reachable; TLS is off: if the server speaks only TLS, set REDIS_TLS=true"
	}
	if retried > 0 {
		return fmt.Errorf("redis at %s unreachable for %s (REDIS_RETRY_TIMEOUT); %s: %w", c, retried, hint, err)
	}
	return fmt.Errorf("redis at %s unreachable; %s: %w", c, hint, err)
}

// tlsConfig trusts the system CAs plus REDIS_TLS_CA_FILE. ServerName stays
// empty: crypto/tls checks each node's certificate against the host it
// dials, which is what a cluster or a sentinel set needs.
func (c RedisConfig) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLSCAFile == "" {
		return tc, nil
	}
	pem, err := os.ReadFile(c.TLSCAFile)
	if err != nil {
		return nil, fmt.Errorf("read REDIS_TLS_CA_FILE: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, redisConfigErr("REDIS_TLS_CA_FILE=%s holds no PEM certificate", c.TLSCAFile)
	}
	tc.RootCAs = pool
	return tc, nil
}
