package runner

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Install copies the running executable into dir as redis-keda (mode 0555):
// the init container of the runner component uses it to put the static
// binary into an emptyDir that the user's container runs it from (the
// distroless image has no cp). It is `redis-keda install DIR`.
func Install(dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the running executable: %w", err)
	}
	src, err := os.Open(self)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", self, err)
	}
	defer src.Close()
	dst := filepath.Join(dir, "redis-keda")
	tmp, err := os.CreateTemp(dir, ".redis-keda-*")
	if err != nil {
		return "", fmt.Errorf("install into %s (a writable directory, such as an emptyDir): %w", dir, err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, src)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o555)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return "", fmt.Errorf("install %s: %w", dst, err)
	}
	return dst, nil
}
