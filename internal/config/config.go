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
	lookup := os.LookupEnv
	if environ != nil {
		lookup = func(k string) (string, bool) { v, ok := environ[k]; return v, ok }
	}
	if err := refuseEmpty(reflect.TypeOf(cfg), lookup); err != nil {
		return err
	}
	opts := env.Options{Environment: environ}
	if err := env.ParseWithOptions(cfg, opts); err != nil {
		return explain(cfg, err, func(k string) string { v, _ := lookup(k); return v })
	}
	return validate(reflect.ValueOf(cfg))
}

// refuseEmpty refuses a variable that has a default but is set to nothing
// (or blanks). caarlos0/env gives such a variable its default, so QUEUE= or
// REDIS_ADDR= in a manifest (a value lost to a templating mistake) would
// silently mean events or localhost:6379.
func refuseEmpty(t reflect.Type, lookup func(string) (string, bool)) error {
	var msgs []string
	for _, v := range fields(t) {
		if !v.hasDefault {
			continue
		}
		if val, set := lookup(v.name); set && strings.TrimSpace(val) == "" {
			msgs = append(msgs, fmt.Sprintf("%s is set but empty; set a value, or unset %s for its default %q", v.name, v.name, v.def))
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(msgs, "; "))
	}
	return nil
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
	for _, v := range fields(t) {
		out[v.field] = v.name
	}
	return out
}

// variable is one field read from the environment.
type variable struct {
	field, name string // Go field, environment variable
	def         string // envDefault
	hasDefault  bool
	typ         reflect.Type
}

// fields lists the variables of a config struct in declaration order,
// nested structs included.
func fields(t reflect.Type) []variable {
	var out []variable
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if tag, ok := f.Tag.Lookup("env"); ok {
				def, hasDef := f.Tag.Lookup("envDefault")
				out = append(out, variable{field: f.Name, name: strings.Split(tag, ",")[0], def: def, hasDefault: hasDef, typ: f.Type})
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
