package config

import (
	"os"
	"path/filepath"
	"reflect"
)

// LoadTree parses the file at path as Load does (includes, globs, <file)
// without interpreting the settings, for `usher config check`, which shows
// them back.
func LoadTree(path string) (*Node, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "Can't open configuration: " + pathErr(err).Error()}
	}
	p := &parser{readFile: os.ReadFile, glob: filepath.Glob}
	root, _, err := p.parse(path, data)
	return root, err
}

// IsDefault reports whether the top-level setting key = value leaves usher
// as an empty file does (so "15 min" and "900 s" for a 15-minute default both
// are). Settings usher does not interpret are not defaults.
func IsDefault(key, value string) bool {
	def, ok := lookupSetting(key)
	if !ok {
		return false
	}
	s := Defaults()
	if def.set(s, value) != nil {
		return false
	}
	return reflect.DeepEqual(s, Defaults())
}

// Interpreted reports whether usher reads the top-level setting key.
func Interpreted(key string) bool {
	_, ok := lookupSetting(key)
	return ok
}
