// Command amavisd runs the amavis content filter daemon in the foreground:
//
//	amavisd [-c FILE] [-d LEVEL] [foreground|debug]
//
// SIGTERM or SIGINT shuts it down gracefully: idle SMTP sessions get 421, messages in
// progress finish.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"amavisgo/amavis"
	"amavisgo/conf"
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("amavisd", flag.ContinueOnError)
	confFile := fs.String("c", "", "configuration file (TOML)")
	debugLevel := fs.String("d", "", "log level (overrides log_level)")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: amavisd [-c FILE] [-d LEVEL] [foreground|debug]")
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	verb := "foreground"
	switch fs.NArg() {
	case 0:
	case 1:
		verb = fs.Arg(0)
	default:
		fs.Usage()
		return 2
	}
	if verb != "foreground" && verb != "debug" {
		fmt.Fprintf(os.Stderr, "amavisd: verb %q is not available yet (foreground, debug)\n", verb)
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
	cfg := conf.Default()
	if *confFile != "" {
		var err error
		if cfg, err = conf.Load(*confFile); err != nil {
			fmt.Fprintln(os.Stderr, "amavisd:", err)
			return 1
		}
	}
	log, err := amavis.NewLog(&cfg.Global, level, verb == "debug")
	if err != nil {
		fmt.Fprintln(os.Stderr, "amavisd: log:", err)
		return 1
	}
	defer log.Close()
	d := amavis.New(cfg, log)
	if err := d.Listen(); err != nil {
		fmt.Fprintln(os.Stderr, "amavisd:", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	errc := make(chan error, 1)
	go func() { errc <- d.Serve() }()
	select {
	case err := <-errc:
		if err != nil {
			fmt.Fprintln(os.Stderr, "amavisd:", err)
			return 1
		}
		return 0
	case <-sig:
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ChildTimeout)*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "amavisd: shutdown:", err)
		return 1
	}
	<-errc
	return 0
}
