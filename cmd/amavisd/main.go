// Command amavisd is the amavis content filter daemon and its command line (a subset of amavis's,
// see usage in Amavis.pm):
//
//	amavisd [-c FILE]... [-d LEVEL] [-m MAX_SERVERS] [-p PORT]... [-V] [VERB]
//
// VERB is start (the default: in the background, with a pid file), foreground, debug, stop,
// reload, restart, showconfig, configtest, selftest, agent or nanny; verbs.go, serve.go and selftest.go carry them
// out. SIGTERM or SIGINT shuts the daemon down gracefully: idle SMTP sessions get 421,
// messages in progress finish; SIGHUP reloads the configuration.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"amavisgo/amavis"
	"amavisgo/perlconf"
)

// defaultConfFile is read when no -c is given, as amavis reads /etc/amavisd.conf.
const defaultConfFile = "/etc/amavisgo/amavisd.toml"

// defaultConfFiles is what is read without -c: our TOML file, or else, on a Debian system with
// amavisd-new's configuration, Debian's conf.d directories in Debian's order.
func defaultConfFiles() []string {
	if _, err := os.Stat(defaultConfFile); err != nil {
		if st, err := os.Stat(perlconf.DebianDirs[len(perlconf.DebianDirs)-1]); err == nil && st.IsDir() {
			return perlconf.DebianDirs
		}
	}
	return []string{defaultConfFile}
}

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("amavisd", flag.ContinueOnError)
	var confFiles []string
	confGiven := false
	fs.Func("c", optionText("c"), func(s string) error {
		confGiven = true
		if s != "" {
			confFiles = append(confFiles, s)
		}
		return nil
	})
	debugLevel := fs.String("d", "", optionText("d"))
	var over overrides
	fs.IntVar(&over.maxServers, "m", 0, optionText("m"))
	fs.Func("p", optionText("p"), func(s string) error {
		over.ports = append(over.ports, s)
		return nil
	})
	profile := fs.String("P", "", optionText("P"))
	version := fs.Bool("V", false, optionText("V"))
	fs.Usage = func() { usage(os.Stderr) } // usage.go, also the man page's source
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // -h asked for the usage: not an error
		}
		return 2
	}
	if *version {
		fmt.Println(amavis.Version)
		return 0
	}
	verb := "start"
	switch {
	case fs.NArg() == 0:
	case dkimVerbs[fs.Arg(0)]:
		files := confFiles
		if !confGiven {
			files = defaultConfFiles()
		}
		return runDKIMVerb(&options{confFiles: files, level: amavis.NoOverride, over: over, verb: fs.Arg(0)}, fs.Args()[1:])
	case fs.NArg() == 1 || fs.Arg(0) == "sql-cleanup":
		verb = fs.Arg(0)
	default:
		fs.Usage()
		return 2
	}
	level := amavis.NoOverride
	if *debugLevel != "" {
		// amavis accepts "-d 5,all": the SpamAssassin areas after the comma do not concern us.
		n, err := strconv.Atoi(strings.SplitN(*debugLevel, ",", 2)[0])
		if err != nil {
			fmt.Fprintf(os.Stderr, "amavisd: bad -d level %q\n", *debugLevel)
			return 2
		}
		level = n
	}
	if !confGiven {
		confFiles = defaultConfFiles()
	}
	return runVerb(&options{confFiles: confFiles, level: level, profile: *profile, over: over, verb: verb, args: fs.Args()[min(1, fs.NArg()):]})
}
