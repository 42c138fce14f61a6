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
		{name: "a long name in parts/", extra: []string{"parts/" + strings.Repeat("n", 250)}},
		{name: "a long name beside parts/", extra: []string{strings.Repeat("n", 250)}},
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
			late, err := pool.take(base, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			pool.put(late, time.Now()) // after close: removed at once
			if _, err := os.Stat(late.path); !os.IsNotExist(err) {
				t.Errorf("a directory given back after close stayed: %v", err)
			}
		})
	}
}

// A kept directory is checked when it is taken: what came into it after its message, or a
// clean-up job's removal of it, is seen then; one unused for dropAfter goes.
func TestSpoolDirCheckedWhenTaken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		meddle func(dir string)
	}{
		{"removed", func(dir string) { os.RemoveAll(dir) }},
		{"parts/ removed", func(dir string) { os.RemoveAll(filepath.Join(dir, "parts")) }},
		{"written into after its message", func(dir string) {
			os.WriteFile(filepath.Join(dir, "parts", "late"), nil, 0o640)
		}},
	} {
		base := t.TempDir()
		var pool spoolDirs
		sd, err := pool.take(base, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		dir := sd.path
		if err := pool.put(sd, time.Now()); err != nil {
			t.Fatal(err)
		}
		tc.meddle(dir)
		next, err := pool.take(base, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if next.path == dir {
			t.Errorf("%s: the kept directory was taken again", tc.name)
		}
		if _, err := os.Stat(filepath.Join(next.path, "parts")); err != nil {
			t.Errorf("%s: new directory: %v", tc.name, err)
		}
		if _, err := os.Stat(dir); tc.name == "written into after its message" && !os.IsNotExist(err) {
			t.Errorf("%s: the dirty directory stayed: %v", tc.name, err)
		}
		pool.close()
	}

	base := t.TempDir()
	var pool spoolDirs
	a, _ := pool.take(base, time.Now())
	b, _ := pool.take(base, time.Now())
	pool.put(a, time.Now().Add(-time.Hour))
	pool.put(b, time.Now())
	if _, err := os.Stat(a.path); !os.IsNotExist(err) {
		t.Errorf("a directory unused for an hour stayed: %v", err)
	}
	if again, _ := pool.take(base, time.Now()); again.path != b.path {
		t.Errorf("took %s, want the recently used %s", again.path, b.path)
	}
	pool.close()
}
