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
