package config

import (
	"errors"
	"io/fs"
	"testing"
)

// memFiles serves !include and <file from a map, so tests need no disk.
func memFiles(files map[string]string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		data, ok := files[name]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return []byte(data), nil
	}
}

// mustParse parses text as usher.conf and fails the test on error.
func mustParse(t *testing.T, text string, files map[string]string) (*Settings, []Warning) {
	t.Helper()
	s, warns, err := Parse("usher.conf", []byte(text), memFiles(files))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s, warns
}

// wantError parses text and checks the error is an *Error with exactly msg
// as its text.
func wantError(t *testing.T, text string, files map[string]string, msg string) {
	t.Helper()
	_, _, err := Parse("usher.conf", []byte(text), memFiles(files))
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("Parse(%q) error = %v, want *Error %q", text, err, msg)
	}
	if err.Error() != msg {
		t.Fatalf("Parse(%q) error = %q, want %q", text, err.Error(), msg)
	}
}
