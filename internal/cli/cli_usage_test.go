package cli

import (
	"reflect"
	"strings"
	"testing"

	"github.com/redis-keda/redis-keda/queue"
)

// The top-level usage names every variable of the Redis connection, Sentinel
// included (REDIS_MODE and REDIS_SENTINEL_* were missing).
func TestUsageNamesEveryRedisVariable(t *testing.T) {
	const want = `
Operator commands (read the same environment variables as the jobs:
REDIS_MODE, REDIS_ADDR, REDIS_USERNAME, REDIS_PASSWORD, REDIS_DB, REDIS_TLS,
REDIS_TLS_CA_FILE, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_USERNAME,
REDIS_SENTINEL_PASSWORD, QUEUE, LEASE_DURATION, MAX_ATTEMPTS, MAX_PAYLOAD_BYTES):
  stats `
	if u := Usage(); !strings.Contains(u, want) {
		t.Errorf("usage:\n%s\nwant it to contain:\n%s", u, want)
	}
	typ := reflect.TypeOf(queue.RedisConfig{})
	for i := range typ.NumField() {
		if name := typ.Field(i).Tag.Get("env"); name != "" && !strings.Contains(Usage(), name) {
			t.Errorf("usage does not name %s (queue.RedisConfig.%s)", name, typ.Field(i).Name)
		}
	}
}
