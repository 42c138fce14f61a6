package amavis

import (
	"os"
	"path/filepath"
	"testing"

	"amavisgo/unpack"
)

// A message directory goes whole: the known files by name, and what else is there (a decoder's
// scratch directory, a stray file) through the fallback; a message file outside the directory
// (AM.PDP's, which belongs to the MTA) stays.
func TestRemoveMessageDir(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string // files besides email.txt and parts/p001, relative to the directory
		amPDP bool
	}{
		{name: "known files"},
		{name: "stray file and scratch directory", extra: []string{"spam.txt", "parts/tmp/x/y"}},
		{name: "AM.PDP file outside", amPDP: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "amavis-x")
			part := filepath.Join(dir, "parts", "p001")
			os.MkdirAll(filepath.Dir(part), 0o750)
			m := &Message{Dir: dir, File: filepath.Join(dir, "email.txt")}
			if tc.amPDP {
				m.File = filepath.Join(base, "mta-file")
			}
			os.WriteFile(m.File, []byte("Subject: s\n\nbody\n"), 0o640)
			os.WriteFile(part, []byte("body\n"), 0o640)
			root := &unpack.Part{Path: m.File}
			m.Unpacked = &unpack.Result{Root: root, Parts: []*unpack.Part{root, {Path: part}}}
			for _, e := range tc.extra {
				os.MkdirAll(filepath.Dir(filepath.Join(dir, e)), 0o750)
				os.WriteFile(filepath.Join(dir, e), nil, 0o640)
			}
			if err := removeMessageDir(m); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("%s is still there: %v", dir, err)
			}
			if _, err := os.Stat(m.File); tc.amPDP && err != nil {
				t.Errorf("the MTA's file %s went: %v", m.File, err)
			}
		})
	}
}
