package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// spamSetup is the spam engine a load goes through: "" for none, "spamd" or "rspamd".
type spamSetup struct {
	engine    string
	rspamdURL string // http://127.0.0.1:port/checkv2
}

// perl is the Perl configuration for the engine: amavis's SpamdClient (which knows only
// 127.0.0.1:783) or RspamdClient, Debian's levels.
func (s spamSetup) perl() string {
	switch s.engine {
	case "spamd":
		return "@bypass_spam_checks_maps = (0);\n$sa_tag_level_deflt = 2.0; $sa_tag2_level_deflt = 6.31; $sa_kill_level_deflt = 6.31;\n" +
			"@spam_scanners = ( ['Local spamd', 'Amavis::SpamControl::SpamdClient'] );\n@additional_perl_modules = ('Amavis::IO::RW');\n"
	case "rspamd":
		return "@bypass_spam_checks_maps = (0);\n$sa_tag_level_deflt = 2.0; $sa_tag2_level_deflt = 6.31; $sa_kill_level_deflt = 6.31;\n" +
			"@spam_scanners = ( ['Local Rspamd', 'Amavis::SpamControl::RspamdClient', url => '" + s.rspamdURL + "', score_factor => 6.31/15] );\n"
	}
	return ""
}

// ours is the same in TOML: top-level keys and tables, to go after the other tables' keys.
func (s spamSetup) ours() (keys, tables string) {
	if s.engine == "" {
		return "", ""
	}
	keys = "sa_tag_level_deflt = 2.0\nsa_tag2_level_deflt = 6.31\nsa_kill_level_deflt = 6.31\n"
	switch s.engine {
	case "spamd":
		tables = "\n[[spam_scanners]]\nname = \"Local spamd\"\ntype = \"Amavis::SpamControl::SpamdClient\"\naddress = \"127.0.0.1:783\"\n"
	case "rspamd":
		tables = "\n[[spam_scanners]]\nname = \"Local Rspamd\"\ntype = \"Amavis::SpamControl::RspamdClient\"\nurl = \"" + s.rspamdURL + "\"\nscore_factor = 0.42066666666666666\n"
	}
	return keys, tables
}

// startSpamd starts Debian's spamd on 127.0.0.1:783 (the address amavis's SpamdClient is
// hard-wired to) with the packaged rules, no network tests and no Bayes.
func startSpamd(dir string, children int) (*process, error) {
	d := filepath.Join(dir, "spamd")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	// spamd reads its rules as nobody
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	pres, _ := filepath.Glob("/etc/spamassassin/*.pre")
	for _, p := range pres {
		if b, err := os.ReadFile(p); err == nil {
			os.WriteFile(filepath.Join(d, filepath.Base(p)), b, 0o644)
		}
	}
	local := "use_bayes 0\nbayes_auto_learn 0\ndns_available no\nskip_rbl_checks 1\nuse_razor2 0\nuse_pyzor 0\n"
	if err := os.WriteFile(filepath.Join(d, "local.cf"), []byte(local), 0o644); err != nil {
		return nil, err
	}
	p, err := start("spamd", filepath.Join(d, "spamd.out"), "/usr/sbin/spamd", "--listen=127.0.0.1:783",
		"--siteconfigpath="+d, "--local", "--nouser-config", "--username=nobody",
		fmt.Sprintf("--max-children=%d", children), fmt.Sprintf("--min-children=%d", children),
		"--pidfile="+filepath.Join(d, "spamd.pid"), "--syslog="+filepath.Join(d, "spamd.log"))
	if err != nil {
		return nil, err
	}
	ready := func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:783", time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "PING SPAMC/1.5\r\n\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		return strings.Contains(line, "PONG")
	}
	return p, waitReady(p, "spamd", ready)
}

// startRspamd starts Debian's rspamd with its packaged configuration, its normal worker on a
// free loopback port (returned), no proxy or fuzzy worker and a resolver that answers nothing.
func startRspamd(dir string, workers int) (*process, string, error) {
	d := filepath.Join(dir, "rspamd")
	for _, sub := range []string{"db", "run", "local"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o777); err != nil {
			return nil, "", err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cport, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := fmt.Sprintf(`.include "$CONFDIR/common.conf"
options {
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    dns { nameserver = ["127.0.0.1:1"]; timeout = 0.2s; retransmits = 1; }
}
logging { type = "file"; filename = "%s"; level = "warning"; }
worker "normal" { bind_socket = "%s"; .include "$CONFDIR/worker-normal.inc" count = %d; }
worker "controller" { bind_socket = "127.0.0.1:%d"; .include "$CONFDIR/worker-controller.inc" }
`, filepath.Join(d, "rspamd.log"), addr, workers, cport)
	confPath := filepath.Join(d, "rspamd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	p, err := start("rspamd", filepath.Join(d, "rspamd.out"), "/usr/bin/rspamd", "-f", "-i", "-c", confPath,
		"--var=LOCAL_CONFDIR="+filepath.Join(d, "local"), "--var=DBDIR="+filepath.Join(d, "db"),
		"--var=RUNDIR="+filepath.Join(d, "run"), "--var=LOGDIR="+d)
	if err != nil {
		return nil, "", err
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	ready := func() bool {
		resp, err := client.Get("http://" + addr + "/ping")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(b), "pong")
	}
	return p, "http://" + addr + "/checkv2", waitReady(p, "rspamd", ready)
}

// waitReady polls ready until it says yes; spamd compiles its rules at start-up.
func waitReady(p *process, name string, ready func() bool) error {
	deadline := time.Now().Add(3 * time.Minute)
	for !ready() {
		select {
		case <-p.exited:
			b, _ := os.ReadFile(p.log)
			return fmt.Errorf("%s exited during start-up: %s", name, strings.TrimSpace(string(b)))
		default:
		}
		if time.Now().After(deadline) {
			p.stop(10 * time.Second)
			return fmt.Errorf("%s did not answer within 3 minutes", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// startEngine starts the spam engine a load needs, once.
func (env *environment) startEngine(engine, dir string, sessions int) error {
	var err error
	switch {
	case engine == "spamd" && env.spamd == nil:
		logf("starting spamd on 127.0.0.1:783 (it compiles its rules first)")
		env.spamd, err = startSpamd(dir, sessions)
	case engine == "rspamd" && env.rspamd == nil:
		env.rspamd, env.rspamdURL, err = startRspamd(dir, max(1, sessions/4))
	}
	return err
}

func (env *environment) stopEngines() {
	for _, p := range []*process{env.spamd, env.rspamd} {
		if p != nil {
			p.stop(10 * time.Second)
		}
	}
}

// spamSetup is what the filters are told about the load's engine.
func (env *environment) spamSetup(l load) spamSetup {
	return spamSetup{engine: l.engine, rspamdURL: env.rspamdURL}
}

// enginePID is the load's spam engine's main process (0: none), whose process tree's CPU is
// the engine's CPU.
func (env *environment) enginePID(l load) int {
	switch {
	case l.engine == "spamd" && env.spamd != nil:
		return env.spamd.pid()
	case l.engine == "rspamd" && env.rspamd != nil:
		return env.rspamd.pid()
	}
	return 0
}
