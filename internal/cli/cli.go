// Package cli holds what the lockfile command and lockfile-etcd share: the
// values of the flags that mean the same in both, and how they end.
package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/golockfile/lockfile/internal/template"
)

// ExitStatus reads -E's value: an exit status from 0 to 255.
func ExitStatus(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 255 {
		return 0, errors.New("not an exit status from 0 to 255")
	}
	return n, nil
}

// CheckTemplate refuses a -t value that is not one line of text or not a
// content template.
func CheckTemplate(s string) error {
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return fmt.Errorf("a control character, %s: the holder is one line of text",
			strconv.QuoteRune(r))
	}
	_, err := template.Expand(s)
	return err
}
