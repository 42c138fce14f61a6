package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"amavisgo/conf"
)

// postfixMaxproc warns when a Postfix transport that feeds us (a content_filter naming one of
// our ports) may open more connections than max_servers: the excess waits in our listen queue
// until Postfix times out and sends the message again, a top cause of timeouts and duplicate
// mail at amavis sites. configDir is Postfix's configuration directory ("" for its default).
// Without postconf there is nothing to check.
func postfixMaxproc(ctx context.Context, cfg *conf.Config, configDir string) []string {
	postconf, err := exec.LookPath("postconf")
	if err != nil {
		postconf = "/usr/sbin/postconf"
	}
	run := func(args ...string) (string, bool) {
		if configDir != "" {
			args = append([]string{"-c", configDir}, args...)
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, postconf, args...).Output()
		return string(out), err == nil
	}
	ours := map[string]bool{}
	for _, l := range cfg.Listeners() {
		if l.Network == "tcp" {
			ours[l.Port] = true
		}
	}
	main, ok := run("-h", "content_filter")
	if !ok {
		return nil
	}
	filters := []string{strings.TrimSpace(main)}
	if perService, ok := run("-P"); ok {
		sc := bufio.NewScanner(strings.NewReader(perService))
		for sc.Scan() {
			if name, value, ok := strings.Cut(sc.Text(), " = "); ok && strings.HasSuffix(name, "/content_filter") {
				filters = append(filters, strings.TrimSpace(value))
			}
		}
	}
	var warnings []string
	seen := map[string]bool{}
	for _, f := range filters {
		transport, nexthop, ok := strings.Cut(f, ":")
		if !ok || transport == "" || seen[transport] {
			continue
		}
		_, port, err := net.SplitHostPort(strings.NewReplacer("[", "", "]", "").Replace(nexthop))
		if err != nil || !ours[port] {
			continue
		}
		seen[transport] = true
		line, ok := run("-M", transport+"/unix")
		fields := strings.Fields(line)
		if !ok || len(fields) < 8 {
			continue
		}
		maxproc, what := fields[6], ""
		if maxproc == "-" {
			def, _ := run("-h", "default_process_limit")
			maxproc, what = strings.TrimSpace(def), " (default_process_limit)"
		}
		n, err := strconv.Atoi(maxproc)
		if err != nil || n <= cfg.MaxServers {
			continue
		}
		warnings = append(warnings, fmt.Sprintf("(!)WARN: Postfix transport %s (content_filter = %s) has maxproc %d%s, "+
			"more than max_servers %d: connections beyond max_servers wait and time out; "+
			"set its maxproc in master.cf to %d or raise max_servers", transport, f, n, what, cfg.MaxServers, cfg.MaxServers))
	}
	return warnings
}
