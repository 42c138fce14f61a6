package amavis

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amavisgo/unpack"
)

// spoolFiles lists what is in TEMPBASE's message directories besides the directories and their
// parts/: what messages left behind.
func spoolFiles(t testing.TB, tempbase string) []string {
	t.Helper()
	var left []string
	dirs, _ := filepath.Glob(filepath.Join(tempbase, "amavis-*"))
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
			if err == nil && path != dir && path != filepath.Join(dir, "parts") {
				left = append(left, path)
			}
			return nil
		})
	}
	return left
}

// A finished message's directory is emptied by name and kept for the next message when it holds
// nothing else; with a stray file or a decoder's scratch directory it goes whole; a message file
// outside it (AM.PDP's, which belongs to the MTA) stays.
func TestSpoolDirKeptOnlyClean(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string // files besides email.txt and parts/p001, relative to the directory
		amPDP bool
		// what happens to the directory itself while the message is processed
		meddle func(dir string)
		kept   bool
	}{
		{name: "known files", kept: true},
		{name: "stray file", extra: []string{"spam.txt"}},
		{name: "scratch directory", extra: []string{"parts/tmp/x/y"}},
		{name: "AM.PDP file outside", amPDP: true, kept: true},
		{name: "removed meanwhile", meddle: func(dir string) { os.RemoveAll(dir) }},
		{name: "replaced meanwhile", meddle: func(dir string) {
			os.RemoveAll(dir)
			os.MkdirAll(filepath.Join(dir, "parts"), 0o750)
		}},
		{name: "parts/ made again with a file in it", meddle: func(dir string) {
			os.RemoveAll(filepath.Join(dir, "parts"))
			os.MkdirAll(filepath.Join(dir, "parts"), 0o750)
			os.WriteFile(filepath.Join(dir, "parts", "p009"), nil, 0o640)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			var pool spoolDirs
			sd, err := pool.take(base, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			dir := sd.path
			if !strings.HasPrefix(filepath.Base(dir), "amavis-") || !ourTempdir.MatchString(filepath.Base(dir)) {
				t.Errorf("directory name %s", dir)
			}
			part := filepath.Join(dir, "parts", "p001")
			m := &Message{Dir: dir, File: filepath.Join(dir, "email.txt"), spool: sd}
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
			if tc.meddle != nil {
				tc.meddle(dir)
			}
			unlinkMessageFiles(m)
			if err := pool.put(sd, time.Now()); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(m.File); tc.amPDP && err != nil {
				t.Errorf("the MTA's file %s went: %v", m.File, err)
			}
			next, err := pool.take(base, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if (next.path == dir) != tc.kept {
				t.Errorf("next message's directory %s, first's %s: want kept %v", next.path, dir, tc.kept)
			}
			if _, err := os.Stat(dir); tc.meddle == nil && !tc.kept && !os.IsNotExist(err) {
				t.Errorf("%s is still there: %v", dir, err)
			}
			if ents, err := os.ReadDir(filepath.Join(next.path, "parts")); err != nil || len(ents) != 0 {
				t.Errorf("next message's parts/: %v, %v", ents, err)
			}
			if files := spoolFiles(t, base); len(files) != 0 && !tc.amPDP {
				t.Errorf("left in TEMPBASE: %v", files)
			}
			pool.put(next, time.Now())
			pool.close()
			if ents, _ := filepath.Glob(filepath.Join(base, "amavis-*")); len(ents) != 0 {
				t.Errorf("after close: %v", ents)
			}
			if _, err := pool.take(base, time.Now()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A directory kept idle for long is checked again before it is used: a clean-up job may have
// removed it (or its parts/), and the message would fail for nothing.
func TestSpoolDirRecheckedAfterIdle(t *testing.T) {
	for _, what := range []string{"", "parts"} {
		base := t.TempDir()
		var pool spoolDirs
		sd, err := pool.take(base, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		dir := sd.path
		hourAgo := time.Now().Add(-time.Hour)
		if err := pool.put(sd, hourAgo); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(filepath.Join(dir, what)) // the job removes old empty directories
		next, err := pool.take(base, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if next.path == dir {
			t.Errorf("%q removed: the kept directory was taken again", filepath.Join(dir, what))
		}
		if _, err := os.Stat(filepath.Join(next.path, "parts")); err != nil {
			t.Errorf("new directory: %v", err)
		}
		// kept a short while: taken again without a check
		pool.put(next, time.Now())
		if again, _ := pool.take(base, time.Now()); again.path != next.path {
			t.Errorf("a directory kept a moment was not taken again: %s, %s", again.path, next.path)
		}
	}
}
