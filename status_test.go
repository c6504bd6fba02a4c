//go:build unix || windows

package lockfile

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"testing"

	"github.com/golockfile/lockfile/internal/template"
)

func TestHolderOfMissingFileIsFreeAndCreatesNothing(t *testing.T) {
	path := tempLockPath(t)
	st, err := Inspect(path)
	holder, held := st.Holder, st.Held
	if err != nil || held || holder != "" {
		t.Fatalf("Inspect(missing) = %q, %v, %v; want free", holder, held, err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Holder created %s: %v", path, err)
	}
}

func TestHolderNamesHolderAndChangesNothing(t *testing.T) {
	path := tempLockPath(t)
	h, content := holdInHelper(t, path, "{pid};worker")
	before := readFile(t, path)

	st, err := Inspect(path)
	holder, held := st.Holder, st.Held
	if err != nil || !held || holder != content {
		t.Fatalf("Holder = %q, %v, %v; want %q, true, nil", holder, held, err, content)
	}
	if after := readFile(t, path); after != before {
		t.Fatalf("Holder changed the file: %q -> %q", before, after)
	}
	assertLocked(t, path, content) // still held by the helper

	h.finish(t)
	st, err = Inspect(path)
	holder, held = st.Holder, st.Held
	if err != nil || held || holder != "" {
		t.Fatalf("after release Holder = %q, %v, %v; want free", holder, held, err)
	}
	if after := readFile(t, path); after != before {
		t.Fatalf("Holder changed the file: %q -> %q", before, after)
	}
	assertFree(t, path)
}

func TestHolderSeesLockObjectOfThisProcess(t *testing.T) {
	path := tempLockPath(t)
	l, err := New(path, WithContentTemplate("here"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if st, err := Inspect(path); err != nil || !st.Held || st.Holder != "here" {
		t.Fatalf("Holder = %+v, %v; want held by \"here\"", st, err)
	}
}

func TestHolderRefusesWhatNewRefuses(t *testing.T) {
	dir := testDir(t)
	if _, err := Inspect(dir); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("Inspect(directory) = %v, want ErrNotRegular", err)
	}
	if st, err := Inspect(dir + "/missing/lock"); err != nil || st.Held {
		t.Fatalf("Inspect(missing parent) = %+v, %v; want free", st, err)
	}
}

func TestExpandTemplateIsWhatNewWrites(t *testing.T) {
	path := tempLockPath(t)
	for _, tmpl := range []string{"{pid}", "{pid};{hostname}", "{{literal}}", ""} {
		want, err := template.Expand(tmpl)
		if err != nil {
			t.Fatalf("template.Expand(%q): %v", tmpl, err)
		}
		l, err := New(path, WithContentTemplate(tmpl))
		if err != nil {
			t.Fatal(err)
		}
		got := l.Content()
		l.Close()
		if got != want || readFile(t, path) != " "+want+"\n" {
			t.Fatalf("template %q: ExpandTemplate %q, New wrote %q", tmpl, want, readFile(t, path))
		}
	}
	if got, _ := template.Expand("{pid}"); got != strconv.Itoa(os.Getpid()) {
		t.Fatalf("template.Expand({pid}) = %q", got)
	}
	var optErr *OptionError
	if _, err := New(path, WithContentTemplate("{user}")); !errors.As(err, &optErr) || optErr.Option != "WithContentTemplate" {
		t.Fatalf("New with {user} = %v, want an *OptionError", err)
	}
}
