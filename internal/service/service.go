// Package service is the main both binaries share: configuration from the
// environment, the JSON logger, signal handling, exit codes.
package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis-keda/redis-keda/internal/config"
	"github.com/redis-keda/redis-keda/internal/logging"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Main parses a C from the environment, builds the logger at the level
// levelOf reads from it, and calls run with a context cancelled by SIGTERM or
// SIGINT. It exits 1 — with the error on stderr, or logged once — when the
// configuration is invalid or run fails (run's error may choose another code
// with an ExitCode() int method); it returns when run returns nil.
func Main[C any](name, version string, levelOf func(*C) zapcore.Level, run func(context.Context, *zap.Logger, C) error) {
	var cfg C
	if err := config.Parse(&cfg); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
	log, err := logging.New(name, version, levelOf(&cfg))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
	logging.RouteRedisLogs(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err = run(ctx, log, cfg)
	stop()
	if err != nil {
		log.Error(name+" failed", zap.Error(err))
		_ = log.Sync()
		code := 1
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		os.Exit(code)
	}
	_ = log.Sync()
}
