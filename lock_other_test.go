//go:build !unix && !windows

package lockfile

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// Where there is no file locking that excludes, every way to take a lock
// fails with errors.ErrUnsupported, and nothing is created.
func TestEveryAttemptIsUnsupported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	attempts := map[string]func() error{
		"NewSimple": func() error { _, err := NewSimple(path); return err },
		"New":       func() error { _, err := New(path); return err },
		"AcquireSimple": func() error {
			_, err := AcquireSimple(context.Background(), path)
			return err
		},
		"Acquire": func() error { _, err := Acquire(context.Background(), path); return err },
	}
	for name, attempt := range attempts {
		if err := attempt(); !errors.Is(err, errors.ErrUnsupported) || errors.Is(err, ErrLocked) {
			t.Errorf("%s: %v, want errors.ErrUnsupported", name, err)
		}
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("an unsupported lock created the file: %v", err)
	}
}
