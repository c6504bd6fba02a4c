package cli

import (
	"strings"
	"testing"
)

func TestExitStatus(t *testing.T) {
	for s, want := range map[string]int{"0": 0, "75": 75, "255": 255} {
		if got, err := ExitStatus(s); err != nil || got != want {
			t.Errorf("ExitStatus(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"-1", "256", "x", ""} {
		if _, err := ExitStatus(s); err == nil {
			t.Errorf("ExitStatus(%q) accepted", s)
		}
	}
}

func TestCheckTemplate(t *testing.T) {
	if err := CheckTemplate("{pid};{hostname}"); err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]string{
		"a\nb":   "control character",
		"{user}": "unknown field",
		"{":      "unmatched",
	} {
		if err := CheckTemplate(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckTemplate(%q) = %v, want an error saying %q", s, err, want)
		}
	}
}
