// Package config reads a process's configuration from environment variables
// (caarlos0/env) and turns parse failures into messages that name the
// variable and the accepted form.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v10"
	"go.uber.org/zap/zapcore"
)

// ErrInvalid wraps every configuration error.
var ErrInvalid = errors.New("invalid configuration")

// Validator is implemented by configuration structs (and embedded parts)
// that check their values after parsing.
type Validator interface{ Validate() error }

// Parse fills cfg (a pointer to a struct with `env` tags) from the
// environment, then runs Validate on cfg and on each embedded or nested
// struct that has one.
func Parse(cfg any) error {
	return ParseFrom(cfg, nil)
}

// ParseFrom is Parse with an explicit environment (nil = the process's).
func ParseFrom(cfg any, environ map[string]string) error {
	opts := env.Options{Environment: environ}
	if err := env.ParseWithOptions(cfg, opts); err != nil {
		lookup := os.Getenv
		if environ != nil {
			lookup = func(k string) string { return environ[k] }
		}
		return explain(cfg, err, lookup)
	}
	return validate(reflect.ValueOf(cfg))
}

func validate(v reflect.Value) error {
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() == reflect.Struct && f.CanAddr() {
			if err := validate(f.Addr()); err != nil {
				return err
			}
		}
	}
	if val, ok := v.Addr().Interface().(Validator); ok {
		if err := val.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return nil
}

// explain rewrites env's errors (which name Go fields) to name the variable
// and the form it accepts.
func explain(cfg any, err error, lookup func(string) string) error {
	vars := envVars(reflect.TypeOf(cfg))
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	msgs := make([]string, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			name := vars[pe.Name]
			msgs = append(msgs, fmt.Sprintf("%s=%q is not %s (%v)", name, lookup(name), form(pe.Type), pe.Err))
			continue
		}
		msgs = append(msgs, e.Error())
	}
	return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(msgs, "; "))
}

// envVars maps Go field names to their variables (nested structs included).
func envVars(t reflect.Type) map[string]string {
	out := map[string]string{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if tag, ok := f.Tag.Lookup("env"); ok {
				out[f.Name] = strings.Split(tag, ",")[0]
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]() {
				walk(f.Type)
			}
		}
	}
	walk(t)
	return out
}

// LogLevels are the values a LOG_LEVEL variable (a zapcore.Level) accepts.
const LogLevels = "debug, info, warn or error (also warning, dpanic, panic, fatal; any case)"

// form says in words what a variable of type t accepts. An optional
// variable (a pointer field, nil when unset) accepts what its element does.
func form(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[zapcore.Level]():
		// zapcore.Level.UnmarshalText: names only (its int8 kind is no number).
		return "a log level: " + LogLevels
	case t == reflect.TypeFor[time.Duration]():
		return "a duration such as 30s, 1m30s or 1h"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return "a whole number"
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		return "a whole number >= 0"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	default:
		return "a valid " + t.String()
	}
}
