// Package ui is the dashboard: an overview of a queue's states, a paged list
// of each, find and bounded search, and the operator's actions (redrive,
// purge, cancel), served by `redis-keda ui` and by the publisher.
//
// Safe by default: it listens on loopback; optional basic auth and bearer
// token; a read-only mode; every change is a POST with a CSRF token and a
// confirmation step; the Host header is checked (DNS rebinding); payloads
// are escaped into text (html.go; never markup); the CSP allows no
// inline script. Everything it serves is embedded: no CDN.
//
// Every page costs Redis O(page): the overview is one snapshot script, a
// HGETALL, an INFO and a ZRANGEBYSCORE of 61 members; a list page reads its
// entries one LINDEX at a time (queue.Page); a search reads at most
// UI_SEARCH_LIMIT entries per state and says so.
package ui

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/redis-keda/redis-keda/queue"
	"go.uber.org/zap"
)

//go:embed static/*
var assets embed.FS

// Server is the dashboard of one queue.
type Server struct {
	q     *queue.Queue
	redis queue.RedisConfig
	cfg   Config
	log   *zap.Logger

	hosts                 map[string]bool
	basic, bearer         bool
	user, password, token [32]byte
	csrf                  string
	static                http.Handler
	sampleEvery           time.Duration
}

// New makes the dashboard of q (reached with rc) from cfg (validated).
func New(q *queue.Queue, rc queue.RedisConfig, cfg Config, log *zap.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	password, token, err := cfg.credentials()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("csrf token: %w", err)
	}
	s := &Server{
		q: q, redis: rc, cfg: cfg, log: log,
		hosts: allowedHosts(cfg), basic: cfg.Username != "", bearer: token != "",
		user: digest(cfg.Username), password: digest(password), token: digest(token),
		csrf: hex.EncodeToString(b), sampleEvery: 15 * time.Second,
	}
	sub, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	s.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	return s, nil
}

// Handler serves the dashboard behind its guard (security.go).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", s.static)
	mux.HandleFunc("GET /{$}", s.overview)
	mux.HandleFunc("GET /fragment/overview", s.overviewFragment)
	mux.HandleFunc("GET /state/{state}", s.list)
	mux.HandleFunc("GET /find", s.find)
	mux.HandleFunc("POST /redrive", s.redrive)
	mux.HandleFunc("POST /purge", s.purge)
	mux.HandleFunc("POST /cancel", s.cancel)
	mux.HandleFunc("POST /due", s.due)
	return s.guard(mux)
}

// Serve serves the dashboard on ln and samples the counters' history
// until ctx is done, then shuts down (within 5 s) and returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: zap.NewStdLog(s.log.Named("ui-http"))}
	var wg sync.WaitGroup
	wg.Go(func() { s.Sample(ctx) })
	errc := make(chan error, 1)
	wg.Go(func() { errc <- srv.Serve(ln) })
	var err error
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = srv.Shutdown(sctx)
		cancel()
	case err = <-errc:
	}
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Sample records the counters' per-minute history in Redis
// (queue.SampleHistory) every 15 s until ctx is done: the chart's history
// lives in Redis, so it survives a restart, and several samplers (two
// publishers, a `redis-keda ui`) write one sample per minute between them.
func (s *Server) Sample(ctx context.Context) {
	t := time.NewTicker(s.sampleEvery)
	defer t.Stop()
	failing := false
	for {
		if _, err := s.q.SampleHistory(ctx); err != nil && ctx.Err() == nil && !failing {
			s.log.Warn("ui: could not sample the counters' history; retrying", zap.Error(err))
			failing = true
		} else if err == nil {
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// entriesData is what entriesHTML shows: entries, and which buttons each
// gets.
type entriesData struct {
	Entries                          []entryView
	CSRF                             string
	Select, Redrive, Cancel, MakeDue bool
}
