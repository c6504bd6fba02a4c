package lockfile

import (
	"errors"
	"testing"
)

// errors.ErrUnsupported is the standard library's kind of error, as os's and
// x/sys's are.
func TestErrUnsupportedIsErrorsErrUnsupported(t *testing.T) {
	if !errors.Is(errors.ErrUnsupported, errors.ErrUnsupported) {
		t.Fatal("errors.Is(errors.ErrUnsupported, errors.ErrUnsupported) does not hold")
	}
	if errors.Is(ErrLocked, errors.ErrUnsupported) {
		t.Fatal("ErrLocked is not errors.ErrUnsupported")
	}
}

func TestLockErrorQuotesUnprintablePaths(t *testing.T) {
	for path, want := range map[string]string{
		"/run/app.lock":        "lockfile: cannot lock /run/app.lock: locked by another holder",
		"/tmp/a\nb":            `lockfile: cannot lock "/tmp/a\nb": locked by another holder`,
		"/tmp/\x1b[31mred":     `lockfile: cannot lock "/tmp/\x1b[31mred": locked by another holder`,
		"/tmp/\xff":            `lockfile: cannot lock "/tmp/\xff": locked by another holder`,
		"/tmp/café and spaces": "lockfile: cannot lock /tmp/café and spaces: locked by another holder",
	} {
		if got := (&LockError{Path: path, Err: ErrLocked}).Error(); got != want {
			t.Errorf("LockError{Path: %q}.Error() = %q, want %q", path, got, want)
		}
	}
}
