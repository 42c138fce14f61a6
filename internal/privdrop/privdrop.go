// Package privdrop takes the daemon from root to $daemon_user/$daemon_group once its sockets are
// bound, refuses to go on as root unless the configuration allows it, and prepares the
// directories the daemon user must write (TEMPBASE, QUARANTINEDIR).
package privdrop

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// Identity is the user and groups the daemon runs as.
type Identity struct {
	User   string
	UID    int
	GID    int   // primary group: $daemon_group, else the user's login group
	Groups []int // supplementary groups, GID first
}

// Lookup resolves daemon_user and daemon_group (names or numbers). As amavis does, the
// supplementary groups are daemon_group followed by the user's own groups, so that e.g. clamav
// membership set up by the administrator keeps working.
func Lookup(userName, groupName string) (*Identity, error) {
	u, err := user.Lookup(userName)
	if err != nil {
		if _, nerr := strconv.Atoi(userName); nerr == nil {
			u, err = user.LookupId(userName)
		}
		if err != nil {
			return nil, fmt.Errorf("daemon_user %q: no such user", userName)
		}
	}
	id := &Identity{User: u.Username}
	id.UID, _ = strconv.Atoi(u.Uid)
	id.GID, _ = strconv.Atoi(u.Gid)
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if err != nil {
			if _, nerr := strconv.Atoi(groupName); nerr == nil {
				g, err = user.LookupGroupId(groupName)
			}
			if err != nil {
				return nil, fmt.Errorf("daemon_group %q: no such group", groupName)
			}
		}
		id.GID, _ = strconv.Atoi(g.Gid)
	}
	id.Groups = []int{id.GID}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("daemon_user %q: its groups: %v", userName, err)
	}
	for _, s := range gids {
		if n, err := strconv.Atoi(s); err == nil && !slices.Contains(id.Groups, n) {
			id.Groups = append(id.Groups, n)
		}
	}
	return id, nil
}

// Drop switches every thread of the process to id (Go's syscall.Setuid does so on Linux):
// supplementary groups first, then the group, then the user, and checks that root cannot be
// regained.
func Drop(id *Identity) error {
	if err := syscall.Setgroups(id.Groups); err != nil {
		return fmt.Errorf("setgroups %v: %w", id.Groups, err)
	}
	if err := syscall.Setgid(id.GID); err != nil {
		return fmt.Errorf("setgid %d: %w", id.GID, err)
	}
	if err := syscall.Setuid(id.UID); err != nil {
		return fmt.Errorf("setuid %d (%s): %w", id.UID, id.User, err)
	}
	if os.Getuid() != id.UID || os.Geteuid() != id.UID || os.Getgid() != id.GID || os.Getegid() != id.GID {
		return fmt.Errorf("switching to %s did not take: UID %d, EUID %d, GID %d, EGID %d",
			id.User, os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid())
	}
	return CheckNotRoot(false)
}

// CheckNotRoot refuses to run as root unless allowed (allow_run_as_root), and refuses a
// non-root process that could switch back to root.
func CheckNotRoot(allowRoot bool) error {
	euid := os.Geteuid()
	if euid == 0 {
		if allowRoot {
			return nil
		}
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return errors.New("Running as EUID 0 (root), ABORTING! Set daemon_user (and daemon_group) in the " +
			"configuration, start as another user, or set allow_run_as_root = true if you mean it")
	}
	if syscall.Setuid(0) == nil {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return fmt.Errorf("It is possible to change EUID from %d to root, ABORTING!", euid)
	}
	return nil
}

// Dir is a directory the daemon writes, named by its amavis setting for messages.
type Dir struct {
	Setting string // "TEMPBASE", "QUARANTINEDIR"
	Path    string
}

// MakeDirs creates each missing directory with mode 0750, owned by id when id is not nil
// (we are root), and checks existing ones: a real directory (not a symlink), writable by the
// daemon user, not writable by everyone. Existing directories are never chowned: a TEMPBASE
// set to "/var" by mistake must fail, not take /var over.
func MakeDirs(id *Identity, dirs ...Dir) error {
	for _, d := range dirs {
		if d.Path == "" {
			continue
		}
		if err := makeDir(id, d); err != nil {
			return fmt.Errorf("%s %s: %w", d.Setting, d.Path, err)
		}
	}
	return nil
}

func makeDir(id *Identity, d Dir) error {
	fi, err := os.Lstat(d.Path)
	if errors.Is(err, fs.ErrNotExist) {
		// Parents must stay traversable by the daemon user; only the directory itself is private.
		if err := os.MkdirAll(filepath.Dir(d.Path), 0o755); err != nil {
			return fmt.Errorf("cannot create it: %v", err)
		}
		if err := os.Mkdir(d.Path, 0o750); err != nil {
			return fmt.Errorf("cannot create it: %v", err)
		}
		// MkdirAll's mode went through the umask; set it exactly.
		if err := os.Chmod(d.Path, 0o750); err != nil {
			return err
		}
		if id != nil {
			if err := os.Chown(d.Path, id.UID, id.GID); err != nil {
				return fmt.Errorf("cannot give it to %s: %v", id.User, err)
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("is not a directory (%s)", fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("is writable by everyone (mode %04o); use mode 0750 owned by the daemon user", fi.Mode().Perm())
	}
	st := fi.Sys().(*syscall.Stat_t)
	uid := os.Geteuid()
	who := "this user"
	if id != nil {
		uid, who = id.UID, id.User
	}
	ownerWrites := int(st.Uid) == uid && fi.Mode().Perm()&0o200 != 0
	groupWrites := id != nil && slices.Contains(id.Groups, int(st.Gid)) && fi.Mode().Perm()&0o020 != 0
	if uid != 0 && !ownerWrites && !groupWrites {
		return fmt.Errorf("is not writable by %s (UID %d): owner UID %d, group GID %d, mode %04o; "+
			"chown it to the daemon user", who, uid, st.Uid, st.Gid, fi.Mode().Perm())
	}
	return nil
}
