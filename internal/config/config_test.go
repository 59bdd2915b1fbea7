package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
)

type inner struct {
	Timeout time.Duration `env:"TIMEOUT" envDefault:"5s"`
}

func (i *inner) Validate() error {
	if i.Timeout > time.Hour {
		return errors.New("TIMEOUT must be at most 1h")
	}
	return nil
}

type testCfg struct {
	Inner inner
	Count int   `env:"COUNT" envDefault:"3"`
	On    bool  `env:"ON" envDefault:"false"`
	Opt   *bool `env:"OPT"` // nil when unset

	Level zapcore.Level `env:"LOG_LEVEL" envDefault:"info"`
}

func TestParseNamesTheVariableAndTheForm(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string // "" = valid
	}{
		{map[string]string{}, ""},
		{map[string]string{"TIMEOUT": "2m", "COUNT": "7", "ON": "true"}, ""},
		{map[string]string{"TIMEOUT": "2"}, `TIMEOUT="2" is not a duration such as 30s`},
		{map[string]string{"COUNT": "three"}, `COUNT="three" is not a whole number`},
		{map[string]string{"ON": "yes please"}, `ON="yes please" is not true or false`},
		{map[string]string{"OPT": "maybe"}, `OPT="maybe" is not true or false`},
		{map[string]string{"TIMEOUT": "2h"}, "TIMEOUT must be at most 1h"},
	}
	for _, tc := range cases {
		var c testCfg
		err := ParseFrom(&c, tc.env)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%v: %v", tc.env, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want ErrInvalid containing %q", tc.env, err, tc.want)
		}
	}
	var c testCfg
	if err := ParseFrom(&c, map[string]string{"COUNT": "7"}); err != nil || c.Count != 7 || c.Inner.Timeout != 5*time.Second || c.Opt != nil {
		t.Errorf("parsed %+v, %v", c, err)
	}
	if err := ParseFrom(&c, map[string]string{"OPT": "false"}); err != nil || c.Opt == nil || *c.Opt {
		t.Errorf("OPT=false parsed as %v, %v", c.Opt, err)
	}
}

// LOG_LEVEL is a zapcore.Level, an int8: its error names the levels, not
// "a whole number" (zap reads names only).
func TestLogLevelNamesTheLevels(t *testing.T) {
	var c testCfg
	err := ParseFrom(&c, map[string]string{"LOG_LEVEL": "verbose"})
	want := `invalid configuration: LOG_LEVEL="verbose" is not a log level: debug, info, warn or error (also warning, dpanic, panic, fatal; any case) (unrecognized level: "verbose")`
	if err == nil || err.Error() != want {
		t.Errorf("LOG_LEVEL=verbose: err = %v\nwant %s", err, want)
	}
	for in, lvl := range map[string]zapcore.Level{"debug": zapcore.DebugLevel, "WARN": zapcore.WarnLevel, "error": zapcore.ErrorLevel} {
		var c testCfg
		if err := ParseFrom(&c, map[string]string{"LOG_LEVEL": in}); err != nil || c.Level != lvl {
			t.Errorf("LOG_LEVEL=%s: %v, %v", in, c.Level, err)
		}
	}
}

// A variable with a default that is set but empty (or blank) is refused,
// named: caarlos0/env would silently give it its default. A variable without
// a default may be empty (OPT="" is unset).
func TestSetButEmptyIsRefused(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string // "" = valid
	}{
		{map[string]string{"COUNT": ""}, `invalid configuration: COUNT is set but empty; set a value, or unset COUNT for its default "3"`},
		{map[string]string{"TIMEOUT": " \t"}, `invalid configuration: TIMEOUT is set but empty; set a value, or unset TIMEOUT for its default "5s"`},
		{map[string]string{"COUNT": "", "LOG_LEVEL": ""}, `invalid configuration: COUNT is set but empty; set a value, or unset COUNT for its default "3"; LOG_LEVEL is set but empty; set a value, or unset LOG_LEVEL for its default "info"`},
		{map[string]string{"OPT": ""}, ""},
		{map[string]string{}, ""},
	}
	for _, tc := range cases {
		var c testCfg
		err := ParseFrom(&c, tc.env)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.env, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want || !errors.Is(err, ErrInvalid)):
			t.Errorf("%q: err = %v\nwant %s", tc.env, err, tc.want)
		}
	}
	// The process's environment (Parse) is read the same way.
	t.Setenv("COUNT", "")
	var c testCfg
	if err := Parse(&c); err == nil || !strings.Contains(err.Error(), "COUNT is set but empty") {
		t.Errorf("Parse with COUNT set empty: %v", err)
	}
}
