package amavis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"amavisgo/conf"
	"amavisgo/delivery"
	"amavisgo/metrics"
	"amavisgo/quarantine"
	"amavisgo/smtp"
	"amavisgo/verdict"
)

// listenMetrics binds metrics_listen (with the other sockets, before privileges are dropped).
func (d *Daemon) listenMetrics(cfg *conf.Config) error {
	addr := cfg.MetricsAddr()
	if addr == "" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics_listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", d.metrics.Handler())
	mux.HandleFunc("/nanny", d.serveNanny)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	d.metricsServer = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := d.metricsServer.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.logf("", -1, "metrics listener %s: %v", addr, err)
		}
	}()
	return nil
}

func (d *Daemon) closeMetrics(ctx context.Context) {
	if d.metricsServer != nil {
		d.metricsServer.Shutdown(ctx)
	}
}

// serveNanny lists the sessions in progress for `amavisd nanny`, one per line: session number,
// state letter, seconds in the task, log id, and the letters the task went through.
func (d *Daemon) serveNanny(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	now := time.Now()
	for _, p := range d.metrics.Sessions() {
		task := p.Task
		if task == "" {
			task = "-"
		}
		bar := p.Bar
		if bar == "" {
			bar = "-"
		}
		fmt.Fprintf(w, "%d %s %.3f %s %s\n", p.No, p.State, now.Sub(p.Since).Seconds(), task, bar)
	}
}

// stateSections say which TimeElapsed section the time in a state belongs to.
var stateSections = map[rune]int{
	metrics.StateData: 0, metrics.StateDecode: 1, metrics.StateVirus: 2, metrics.StateSpam: 3,
	metrics.StateQuarantine: 4, metrics.StateForward: 5,
}

// enter moves the message's session to state and charges the time since the last change to
// the section of the state it leaves.
func (m *progress) enter(state rune, logID string) {
	if m.proc == nil {
		return // metrics are off
	}
	now := time.Now()
	if sec, ok := stateSections[m.state]; ok && !m.stateSince.IsZero() {
		m.sections[sec] += now.Sub(m.stateSince)
	}
	m.state, m.stateSince = state, now
	m.proc.Set(state, logID)
}

// countMessage adds a finished message to the counters, as Amavis.pm's check_mail updates the
// SNMP counters at the end of a message.
func (d *Daemon) countMessage(m *Message, start time.Time) {
	m.enter(metrics.StateDone, m.LogID)
	if d.metrics == nil {
		return
	}
	mm := &metrics.Message{
		Originating: m.Policy.Originating,
		NullSender:  m.Sender == "",
		Size:        m.Size,
		Recipients:  make([]metrics.Recipient, 0, 8),
		Decoded:     m.Unpacked != nil,
		VirusCheck:  len(m.AV.Engines) > 0,
		Sections:    m.sections,
	}
	mm.Sections[6] = time.Since(start)
	for _, r := range m.Recips {
		mm.Recipients = append(mm.Recipients, metrics.Recipient{Local: r.Local, Status: recipientStatus(r)})
	}
	if v := m.Verdict; v != nil {
		mm.Category = v.CCats.Main().Name()
		if c := v.CCats.Main(); c.Minor != 0 {
			mm.Category = verdict.CCat{Major: c.Major}.Name()
		}
		mm.Viruses = v.Viruses
	}
	d.metrics.Message(mm)
	for _, e := range m.AV.Engines {
		result := "clean"
		switch {
		case e.Err != nil:
			result = "failed"
		case e.Infected:
			result = "infected"
		}
		d.metrics.Scanned(e.Name, result, e.Duration)
	}
	// One forwarded copy per distinct reply of the next hop (each transaction has its queue id).
	var copies []smtp.Reply
	for _, r := range m.Recips {
		if r.Relayed() && !slices.Contains(copies, r.Remote) {
			copies = append(copies, r.Remote)
		}
	}
	d.metrics.Sent("Relay", len(copies))
}

// recipientStatus is the recipient's outcome without its direction, as amavis's InMsgsStatus
// counters name it (ActionWord writes "Relayed" for RelayedUntagged).
func recipientStatus(r *verdict.Recipient) string {
	w := verdict.ActionWord(r, false)
	for _, dir := range []string{"Inbound", "OpenRelay"} {
		if s, ok := strings.CutSuffix(w, dir); ok {
			w = s
			break
		}
	}
	if w == "Relayed" {
		return "RelayedUntagged"
	}
	return w
}

// quarantineCategory names the category a quarantine kind counts under (QuarMsgs<Category>).
func quarantineCategory(k quarantine.Kind) string {
	return [...]string{"Virus", "Banned", "Unchecked", "Spam", "BadHdr", "Clean", "Arch"}[k]
}

// countingSender counts the mail the daemon originates that the next hop accepted: DSNs (null
// sender) and notifications, or quarantine copies sent by mail (OutMsgsSubmit*).
type countingSender struct {
	delivery.Sender
	metrics *metrics.Set
	kind    string // "" for notifications and DSNs, told apart by the envelope sender
}

func (c countingSender) Send(ctx context.Context, via conf.Method, from string, rcpts []string, msg io.Reader) ([]delivery.Result, error) {
	res, err := c.Sender.Send(ctx, via, from, rcpts, msg)
	if err == nil {
		for _, r := range res {
			if r.Reply.Class() == 2 {
				kind := c.kind
				switch {
				case kind != "":
				case from == "":
					kind = "SubmitDsn"
				default:
					kind = "SubmitNotif"
				}
				c.metrics.Sent(kind, 1)
				break
			}
		}
	}
	return res, err
}

// progress is where a message's session is, and the time the message spent in each section.
type progress struct {
	proc       *metrics.Proc
	state      rune
	stateSince time.Time
	sections   [7]time.Duration // metrics.Sections' order
}
