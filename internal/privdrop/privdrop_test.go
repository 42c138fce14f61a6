package privdrop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the daemon drops privileges only when started as root")
	}
}

func TestLookup(t *testing.T) {
	id, err := Lookup("nobody", "nogroup")
	if err != nil {
		t.Fatal(err)
	}
	if id.User != "nobody" || id.UID != 65534 || id.GID != 65534 || id.Groups[0] != 65534 {
		t.Errorf("nobody/nogroup = %+v", id)
	}
	if byNumber, err := Lookup("65534", "65534"); err != nil || byNumber.UID != id.UID || byNumber.GID != id.GID {
		t.Errorf("by number: %+v, %v", byNumber, err)
	}
	if _, err := Lookup("no-such-user-here", ""); err == nil || err.Error() != `daemon_user "no-such-user-here": no such user` {
		t.Errorf("missing user: %v", err)
	}
	if _, err := Lookup("nobody", "no-such-group-here"); err == nil || err.Error() != `daemon_group "no-such-group-here": no such group` {
		t.Errorf("missing group: %v", err)
	}
}

// TestDrop runs the drop in a child process (this test binary again), since it cannot be undone.
func TestDrop(t *testing.T) {
	if os.Getenv("PRIVDROP_TEST_CHILD") == "1" {
		id, err := Lookup("nobody", "nogroup")
		if err == nil {
			err = Drop(id)
		}
		groups, _ := syscall.Getgroups()
		fmt.Printf("err=%v uid=%d euid=%d gid=%d groups=%v\n", err, os.Getuid(), os.Geteuid(), os.Getgid(), groups)
		os.Exit(0)
	}
	requireRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestDrop$")
	cmd.Env = append(os.Environ(), "PRIVDROP_TEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if want := "err=<nil> uid=65534 euid=65534 gid=65534 groups=[65534]\n"; !strings.HasPrefix(string(out), want) {
		t.Errorf("child said %q, want %q", out, want)
	}
}

func TestCheckNotRoot(t *testing.T) {
	requireRoot(t)
	if err := CheckNotRoot(false); err == nil || !strings.HasPrefix(err.Error(), "Running as EUID 0 (root), ABORTING!") ||
		!strings.Contains(err.Error(), "allow_run_as_root = true") {
		t.Errorf("as root, not allowed: %v", err)
	}
	if err := CheckNotRoot(true); err != nil {
		t.Errorf("as root, allowed: %v", err)
	}
}

func TestMakeDirs(t *testing.T) {
	requireRoot(t)
	nobody, err := Lookup("nobody", "nogroup")
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	os.Chmod(base, 0o755)

	fresh := filepath.Join(base, "lib", "amavisgo", "tmp")
	if err := MakeDirs(nobody, Dir{"TEMPBASE", fresh}); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(fresh)
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o750 || st.Uid != 65534 || st.Gid != 65534 {
		t.Errorf("created %s with mode %04o owner %d:%d, want 0750 65534:65534", fresh, fi.Mode().Perm(), st.Uid, st.Gid)
	}
	if parent, _ := os.Stat(filepath.Dir(fresh)); parent.Mode().Perm() != 0o755 {
		t.Errorf("parent mode %04o, want 0755 so the daemon user can reach TEMPBASE", parent.Mode().Perm())
	}
	if err := MakeDirs(nobody, Dir{"TEMPBASE", fresh}); err != nil {
		t.Errorf("an existing good directory: %v", err)
	}

	worldWritable := filepath.Join(base, "ww")
	os.Mkdir(worldWritable, 0o777)
	os.Chmod(worldWritable, 0o1777)
	rootOwned := filepath.Join(base, "rootowned")
	os.Mkdir(rootOwned, 0o755)
	groupWritable := filepath.Join(base, "groupwritable")
	os.Mkdir(groupWritable, 0o770)
	os.Chmod(groupWritable, 0o770)
	os.Chown(groupWritable, 0, 65534)
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	link := filepath.Join(base, "link")
	os.Symlink(fresh, link)

	for _, tc := range []struct{ path, want string }{
		{worldWritable, "QUARANTINEDIR " + worldWritable + ": is writable by everyone (mode 0777)"},
		{rootOwned, "QUARANTINEDIR " + rootOwned + ": is not writable by nobody (UID 65534): owner UID 0, group GID 0, mode 0755"},
		{file, "QUARANTINEDIR " + file + ": is not a directory"},
		{link, "QUARANTINEDIR " + link + ": is not a directory (L"},
		{groupWritable, ""},
		{filepath.Join(file, "sub"), "QUARANTINEDIR " + filepath.Join(file, "sub") + ": "},
	} {
		err := MakeDirs(nobody, Dir{"QUARANTINEDIR", tc.path})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.path, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.path, err, tc.want)
		}
	}
}
