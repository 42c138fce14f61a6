package main

import (
	"fmt"
	"io"
	"strings"
)

// The command line's one description: `amavisd -h` prints it (usage), and the man page
// docs/amavisd.8 is generated from it (manPage in usage_test.go: go test ./cmd/amavisd -run TestManPage -update).

const synopsis = "amavisd [-c FILE]... [-d LEVEL] [-m MAX_SERVERS] [-p PORT]... [-P ADDR] [-V] [VERB]"

// option is one command-line option: its flag, its argument's name ("" for none) and what it does.
type option struct{ flag, arg, text string }

var cmdOptions = []option{
	{"c", "FILE", "a configuration file or conf.d directory, TOML or amavis's Perl, told apart by content; repeatable, read in order, a later file overriding; default " + defaultConfFile + ", else Debian's /usr/share/amavis/conf.d and /etc/amavis/conf.d; -c '' for the built-in defaults"},
	{"d", "LEVEL", "the log level, beating log_level of every policy bank (amavis's \"-d 5,all\" is taken as 5)"},
	{"m", "MAX_SERVERS", "max_servers"},
	{"p", "PORT", "a listen socket: port, host:port or unix:/path; repeatable; replaces inet_socket_port and unix_socketname"},
	{"P", "ADDR", "serves Go's profiler (net/http/pprof) on ADDR, a loopback host:port, for measuring the running daemon; off by default; every local user can reach it"},
	{"V", "", "print the version and exit"},
}

// verb is one command (amavis's are listed after its usage in Amavis.pm).
type verb struct{ name, text string }

var verbs = []verb{
	{"start", "the default: runs in the background, writes pid_file, and returns once the daemon accepts connections (exit status 0), or says why it could not start (exit status 1)"},
	{"foreground", "runs in the foreground (systemd's Type=notify)"},
	{"debug", "runs in the foreground and logs every level to stderr"},
	{"stop", "sends SIGTERM to the pid in pid_file and waits: messages in flight finish, new commands get 421"},
	{"reload", "sends SIGHUP: the configuration is read again for new connections and LOGFILE is reopened; a broken configuration is refused and the old one keeps running"},
	{"restart", "stop (when a daemon runs), then start"},
	{"showconfig", "prints the effective configuration as TOML that loads again"},
	{"configtest", "loads the configuration and checks the daemon user, group and listen sockets; exit status 0 when it would start"},
	{"selftest", "sends a clean message, EICAR, EICAR in a zip and a banned .exe through a temporary daemon built from the configuration"},
	{"agent", "prints the running daemon's counters in amavisd-agent's layout, read from metrics_listen (docs/metrics.md)"},
	{"nanny", "prints the running daemon's sessions with amavisd-nanny's state letters, read from metrics_listen"},
	{"genrsa", "genrsa FILE [BITS]: writes a new RSA key for DKIM signing (1024 bits by default, as amavis), mode 0600, refusing an existing file"},
	{"showkeys", "showkeys [DOMAIN...]: prints the DNS TXT records of the dkim_key entries, in amavis's layout"},
	{"sql-cleanup", "sql-cleanup [--older-than DAYS] [--batch N]: deletes old rows of the SQL log and quarantine in batches, as README.sql advises"},
	{"testkeys", "testkeys [DOMAIN...]: looks each dkim_key's record up in DNS and compares it with the key"},
}

// usage is what -h and a usage error print.
func usage(w io.Writer) {
	var names []string
	for _, v := range verbs {
		names = append(names, v.name)
	}
	fmt.Fprintf(w, "usage: %s\n  VERB: %s\n\noptions:\n", synopsis, strings.Join(names, "|"))
	for _, o := range cmdOptions {
		fmt.Fprintf(w, "  -%s %-12s %s\n", o.flag, o.arg, o.text)
	}
	fmt.Fprintln(w, "\nverbs:")
	for _, v := range verbs {
		fmt.Fprintf(w, "  %-11s %s\n", v.name, v.text)
	}
}

// optionText is the flag package's help text of option name.
func optionText(name string) string {
	for _, o := range cmdOptions {
		if o.flag == name {
			return o.text
		}
	}
	panic("undocumented option -" + name)
}
