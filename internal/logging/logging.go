// Package logging builds the zap JSON logger both binaries use.
package logging

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a production (JSON, ISO-8601 time) logger at level, tagged with
// the service name and version.
func New(service, version string, level zapcore.Level) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(level)
	cfg.EncoderConfig.TimeKey = "time"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.EncoderConfig.EncodeDuration = zapcore.StringDurationEncoder
	cfg.Sampling = nil // every outcome line matters
	cfg.DisableStacktrace = true
	log, err := cfg.Build(zap.Fields(zap.String("service", service), zap.String("version", version)))
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return log, nil
}

// RouteRedisLogs sends go-redis's own log lines (connection pool notices,
// printed as plain text to stderr by default) through log at debug level, so
// every line the process writes is JSON. go-redis's logger is process-wide:
// call this once, from main.
func RouteRedisLogs(log *zap.Logger) {
	redis.SetLogger(redisLogger{log.Named("go-redis").Sugar()})
}

type redisLogger struct{ s *zap.SugaredLogger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) { l.s.Debugf(format, v...) }
