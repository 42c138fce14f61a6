// Package metrics counts what the daemon does in amavis's counter families, the ones
// Amavis::DB::SNMP keeps for amavisd-agent and the AMAVIS-MIB (InMsgs, InMsgsStatus*,
// Content*Msgs, QuarMsgs*, OutMsgs*, TimeElapsed*, LogEntries*, virus.byname.*), and serves
// them to Prometheus. Each metric's help text names the amavis counter it corresponds to, and
// AmavisNames turns a scrape back into those names for `amavisd agent`.
//
// Every counter a message can touch is resolved when the Set is built, so counting a message
// is a handful of atomic additions: no label hashing or locking on the message path.
package metrics

import (
	"cmp"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Directions of mail as amavis names them: a message with local and remote recipients counts
// in two directions, and Originating pairs with Internal or Outbound.
var Directions = []string{"Inbound", "Internal", "Outbound", "OpenRelay", "Originating"}

// Statuses are the recipient outcomes of amavis's InMsgsStatus* counters (Amavis.pm's
// check_mail); "Relayed" counts both RelayedUntagged and RelayedTagged.
var Statuses = []string{"Relayed", "RelayedUntagged", "RelayedTagged", "Discarded", "NoBounce",
	"Bounced", "Rejected", "TempFailed", "Unknown"}

// Categories are amavis's %ccat_display_names_major, the Content*Msgs counters.
var Categories = []string{"CatchAll", "Clean", "MtaFailed", "Oversized", "BadHdr", "Spammy", "Spam",
	"Unchecked", "Banned", "Virus"}

// Sections are amavis's TimeElapsed* counters (the check's sections, and Total).
var Sections = []string{"Receiving", "Decoding", "VirusCheck", "SpamCheck", "QuarantineAndNotify",
	"Sending", "Total"}

// OutKinds are the kinds of mail the daemon sends (amavis's OutMsgs* counters): the forwarded
// message, DSNs to senders, notifications, and quarantine copies sent by mail.
var OutKinds = []string{"Relay", "SubmitDsn", "SubmitNotif", "SubmitQuar"}

// LogLevels are syslog's names for amavis's log levels (LogEntries*): -3 and below Crit, -2 Err,
// -1 Warning, 0 Notice, 1-2 Info, 3 and above Debug (Amavis::Util's do_log).
var LogLevels = []string{"Crit", "Err", "Warning", "Notice", "Info", "Debug"}

// maxVirusNames bounds the virus_detections_total series: names after the first this many
// count as "other", so a flood of distinct names cannot grow the registry without bound.
const maxVirusNames = 200

// Set is the daemon's metrics. A nil *Set counts nothing: metrics are off.
type Set struct {
	reg *prometheus.Registry

	inMsgs, inRecips, inSize, inNullSender prometheus.Counter
	inRecipsLocal                          prometheus.Counter
	inMsgsDir, inRecipsDir, inSizeDir      map[string]prometheus.Counter
	status                                 map[string]prometheus.Counter
	statusDir                              map[[2]string]prometheus.Counter
	content                                map[string]prometheus.Counter
	contentDir                             map[[2]string]prometheus.Counter
	quarantined, quarantinedSize           map[string]prometheus.Counter
	quarantineFailures                     prometheus.Counter
	out                                    map[string]prometheus.Counter
	opsDec, opsVirus, opsSpam              prometheus.Counter
	sections                               map[string]prometheus.Observer

	scannerRequests *prometheus.CounterVec
	scannerDuration *prometheus.HistogramVec
	scannersMu      sync.Mutex
	scanners        map[string]*scannerCounters

	viruses     *prometheus.CounterVec
	virusesMu   sync.Mutex
	virusNames  map[string]prometheus.Counter
	virusOthers prometheus.Counter

	logEntries map[string]prometheus.Counter

	reloads          map[bool]prometheus.Counter
	reloadOK, reload prometheus.Gauge

	// procs are the sessions in progress, for the sessions gauge and `amavisd nanny`.
	procs *sessionTable
}

type scannerCounters struct {
	ok, infected, failed prometheus.Counter
	duration             prometheus.Observer
}

// New builds the metrics of a daemon of this version; maxSessions reports max_servers as it
// is now (it changes on reload).
func New(version string, maxSessions func() int) *Set {
	s := &Set{reg: prometheus.NewRegistry(), procs: &sessionTable{}}
	r := s.reg
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "amavis", Name: name, Help: help})
		r.MustRegister(c)
		return c
	}
	byLabel := func(name, help, label string, values []string) map[string]prometheus.Counter {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "amavis", Name: name, Help: help}, []string{label})
		r.MustRegister(v)
		m := make(map[string]prometheus.Counter, len(values))
		for _, x := range values {
			m[x] = v.WithLabelValues(x)
		}
		return m
	}
	byTwo := func(name, help, l1, l2 string, v1, v2 []string) map[[2]string]prometheus.Counter {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "amavis", Name: name, Help: help}, []string{l1, l2})
		r.MustRegister(v)
		m := make(map[[2]string]prometheus.Counter, len(v1)*len(v2))
		for _, a := range v1 {
			for _, b := range v2 {
				m[[2]string{a, b}] = v.WithLabelValues(a, b)
			}
		}
		return m
	}
	s.inMsgs = counter("in_messages_total", "Messages received (amavis InMsgs).")
	s.inRecips = counter("in_recipients_total", "Recipients of the messages received (amavis InMsgsRecips).")
	s.inSize = counter("in_bytes_total", "Size of the messages received (amavis InMsgsSize).")
	s.inRecipsLocal = counter("in_recipients_local_total", "Local recipients of the messages received (amavis InMsgsRecipsLocal).")
	s.inNullSender = counter("in_null_sender_total", "Messages received with a null sender (amavis InMsgsBounceNullRPath).")
	s.inMsgsDir = byLabel("in_messages_direction_total",
		"Messages received, by direction (amavis InMsgs<Direction>); a message with local and remote recipients counts in two directions.",
		"direction", Directions)
	s.inRecipsDir = byLabel("in_recipients_direction_total",
		"Recipients of the messages received, by direction (amavis InMsgsRecips<Direction>).", "direction", Directions)
	s.inSizeDir = byLabel("in_bytes_direction_total",
		"Size of the messages received, by direction (amavis InMsgsSize<Direction>).", "direction", Directions)
	s.status = byLabel("message_status_total",
		"Messages by recipient outcome, each outcome counted once per message (amavis InMsgsStatus<Status>).", "status", Statuses)
	s.statusDir = byTwo("message_status_direction_total",
		"Messages by recipient outcome and direction (amavis InMsgsStatus<Status><Direction>).",
		"status", "direction", Statuses, Directions)
	s.content = byLabel("content_total",
		"Messages by main content category (amavis Content<Category>Msgs).", "ccat", Categories)
	s.contentDir = byTwo("content_direction_total",
		"Messages by main content category and direction (amavis Content<Category>Msgs<Direction>).",
		"ccat", "direction", Categories, Directions)
	quarKinds := append(append([]string(nil), Categories...), "Arch")
	s.quarantined = byLabel("quarantined_total",
		"Messages quarantined, by the category the copy is kept for (amavis QuarMsgs and QuarMsgs<Category>).", "ccat", quarKinds)
	s.quarantinedSize = byLabel("quarantined_bytes_total",
		"Size of the messages quarantined (amavis QuarMsgsSize and QuarMsgsSize<Category>).", "ccat", quarKinds)
	s.quarantineFailures = counter("quarantine_failures_total", "Quarantine attempts that failed (amavis QuarAttemptFails).")
	s.out = byLabel("out_messages_total",
		"Messages sent by the daemon: forwarded copies, DSNs, notifications, quarantine copies by mail (amavis OutMsgs<Kind>).",
		"kind", OutKinds)
	ops := byLabel("operations_total",
		"Checks run (amavis OpsDec: messages decoded, OpsVirusCheck: virus scans, OpsSpamCheck: spam checks).",
		"op", []string{"Dec", "VirusCheck", "SpamCheck"})
	s.opsDec, s.opsVirus, s.opsSpam = ops["Dec"], ops["VirusCheck"], ops["SpamCheck"]
	secs := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "amavis", Name: "check_duration_seconds",
		Help:    "Time spent per message in each section of the check (amavis TimeElapsed<Section>).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"section"})
	r.MustRegister(secs)
	s.sections = map[string]prometheus.Observer{}
	for _, x := range Sections {
		s.sections[x] = secs.WithLabelValues(x)
	}
	s.scannerRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "amavis", Name: "scanner_requests_total",
		Help: "Requests to each virus or spam engine, by result: clean, infected or failed (amavis's av-scanner and spam-scanner log lines)."},
		[]string{"scanner", "result"})
	s.scannerDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "amavis", Name: "scanner_duration_seconds",
		Help:    "Time each virus or spam engine took per message (amavis TimeElapsedVirusCheck, TimeElapsedSpamCheck, per engine).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"scanner"})
	r.MustRegister(s.scannerRequests, s.scannerDuration)
	s.scanners = map[string]*scannerCounters{}
	s.viruses = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "amavis", Name: "virus_detections_total",
		Help: "Messages in which a virus of this name was found (amavis virus.byname.<name>); names beyond the first 200 count as \"other\"."},
		[]string{"name"})
	r.MustRegister(s.viruses)
	s.virusNames = map[string]prometheus.Counter{}
	s.logEntries = byLabel("log_entries_total",
		"Log lines written, by syslog priority (amavis LogEntries<Level>, which counts each line in its own and every less severe level).",
		"level", LogLevels)
	s.reloads = map[bool]prometheus.Counter{}
	rv := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "amavis", Name: "config_reloads_total",
		Help: "Configuration reloads (SIGHUP, amavisd reload), by result."}, []string{"result"})
	r.MustRegister(rv)
	s.reloads[true], s.reloads[false] = rv.WithLabelValues("success"), rv.WithLabelValues("failure")
	s.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "amavis", Name: "config_last_reload_successful",
		Help: "1 when the last configuration reload succeeded (or none was asked for), 0 when it was refused."})
	s.reload = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "amavis", Name: "config_last_reload_success_timestamp_seconds",
		Help: "When the configuration in effect was loaded (start-up or the last successful reload)."})
	s.reloadOK.Set(1)
	s.reload.SetToCurrentTime()
	r.MustRegister(s.reloadOK, s.reload)
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "amavis", Name: "max_sessions",
		Help: "Sessions the daemon runs at once: max_servers (amavis ProcAll)."},
		func() float64 { return float64(maxSessions()) }))
	r.MustRegister(&sessionCollector{procs: s.procs, desc: prometheus.NewDesc("amavis_sessions",
		"Sessions in progress by state, with amavisd-nanny's state letter in the state label (amavis ProcBusy*).",
		[]string{"state"}, nil)})
	bi := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "amavis", Name: "build_info",
		Help:        "The daemon's version (amavis sysDescr), always 1.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()}})
	bi.Set(1)
	r.MustRegister(bi)
	r.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return s
}

// Handler serves the metrics in Prometheus's text format.
func (s *Set) Handler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})
}

// Gatherer is the registry, for tests and `amavisd agent` in the same process.
func (s *Set) Gatherer() prometheus.Gatherer { return s.reg }

// Recipient is one recipient's part in a message's counters.
type Recipient struct {
	Local  bool
	Status string // one of Statuses
}

// Message is what the counters need of one finished message.
type Message struct {
	Originating bool
	NullSender  bool
	Size        int64
	Recipients  []Recipient
	Category    string // the main category's display name, one of Categories
	Viruses     []string
	Decoded     bool
	VirusCheck  bool
	SpamCheck   bool
	Sections    [7]time.Duration // in the order of Sections; zero: the section did not run
}

// Message counts one message as Amavis.pm's check_mail counts it: once received, once per
// direction it travels, once per distinct outcome, once under its category.
func (s *Set) Message(m *Message) {
	if s == nil {
		return
	}
	local, remote := 0, 0
	for _, r := range m.Recipients {
		if r.Local {
			local++
		} else {
			remote++
		}
	}
	size := float64(m.Size)
	s.inMsgs.Inc()
	s.inRecips.Add(float64(len(m.Recipients)))
	s.inSize.Add(size)
	if m.NullSender {
		s.inNullSender.Inc()
	}
	localDir, remoteDir := "Inbound", "OpenRelay"
	if m.Originating {
		localDir, remoteDir = "Internal", "Outbound"
	}
	var dirs [3]string
	n := 0
	if m.Originating {
		dirs[n] = "Originating"
		n++
	}
	if local > 0 {
		dirs[n] = localDir
		n++
		s.inMsgsDir[localDir].Inc()
		s.inRecipsDir[localDir].Add(float64(local))
		s.inRecipsLocal.Add(float64(local))
		s.inSizeDir[localDir].Add(size)
	}
	if remote > 0 {
		dirs[n] = remoteDir
		n++
		s.inMsgsDir[remoteDir].Inc()
		s.inRecipsDir[remoteDir].Add(float64(remote))
		s.inSizeDir[remoteDir].Add(size)
	}
	if m.Originating {
		s.inMsgsDir["Originating"].Inc()
		s.inRecipsDir["Originating"].Add(float64(len(m.Recipients)))
		s.inSizeDir["Originating"].Add(size)
	}
	if c, ok := s.content[m.Category]; ok {
		c.Inc()
		for _, d := range dirs[:n] {
			s.contentDir[[2]string{m.Category, d}].Inc()
		}
	}
	s.countStatuses(m)
	if m.Decoded {
		s.opsDec.Inc()
	}
	if m.VirusCheck {
		s.opsVirus.Inc()
	}
	if m.SpamCheck {
		s.opsSpam.Inc()
	}
	for _, v := range m.Viruses {
		s.virus(v).Inc()
	}
	for i, d := range m.Sections {
		if d > 0 {
			s.sections[Sections[i]].Observe(d.Seconds())
		}
	}
}

// countStatuses counts each distinct outcome once, with and without its direction, as amavis's
// %which_counts does; RelayedTagged and RelayedUntagged also count as Relayed.
func (s *Set) countStatuses(m *Message) {
	var seenBuf [24][2]string
	seen := seenBuf[:0]
	count := func(st, dir string) {
		k := [2]string{st, dir}
		for _, x := range seen {
			if x == k {
				return
			}
		}
		seen = append(seen, k)
		if dir == "" {
			s.status[st].Inc()
		} else {
			s.statusDir[k].Inc()
		}
	}
	for _, r := range m.Recipients {
		st := r.Status
		if _, ok := s.status[st]; !ok {
			st = "Unknown"
		}
		dir := "OpenRelay"
		switch {
		case r.Local && m.Originating:
			dir = "Internal"
		case r.Local:
			dir = "Inbound"
		case m.Originating:
			dir = "Outbound"
		}
		for _, st := range [2]string{st, relayed(st)} {
			if st == "" {
				continue
			}
			count(st, "")
			count(st, dir)
			if m.Originating {
				count(st, "Originating")
			}
		}
	}
}

func relayed(status string) string {
	if status == "RelayedTagged" || status == "RelayedUntagged" {
		return "Relayed"
	}
	return ""
}

func (s *Set) virus(name string) prometheus.Counter {
	s.virusesMu.Lock()
	defer s.virusesMu.Unlock()
	if c, ok := s.virusNames[name]; ok {
		return c
	}
	if len(s.virusNames) >= maxVirusNames {
		if s.virusOthers == nil {
			s.virusOthers = s.viruses.WithLabelValues("other")
		}
		return s.virusOthers
	}
	c := s.viruses.WithLabelValues(name)
	s.virusNames[name] = c
	return c
}

// Quarantined counts a copy kept for category ccat (one of Categories, or "Arch").
func (s *Set) Quarantined(ccat string, size int64) {
	if s == nil {
		return
	}
	if c, ok := s.quarantined[ccat]; ok {
		c.Inc()
		s.quarantinedSize[ccat].Add(float64(size))
	}
}

// QuarantineFailed counts a quarantine attempt that failed.
func (s *Set) QuarantineFailed() {
	if s != nil {
		s.quarantineFailures.Inc()
	}
}

// Sent counts n messages of kind (one of OutKinds) that the next hop accepted.
func (s *Set) Sent(kind string, n int) {
	if s == nil {
		return
	}
	if c, ok := s.out[kind]; ok && n > 0 {
		c.Add(float64(n))
	}
}

// Scanned counts one engine's request: result is "clean", "infected" or "failed".
func (s *Set) Scanned(scanner, result string, took time.Duration) {
	if s == nil {
		return
	}
	s.scannersMu.Lock()
	c, ok := s.scanners[scanner]
	if !ok {
		c = &scannerCounters{
			ok:       s.scannerRequests.WithLabelValues(scanner, "clean"),
			infected: s.scannerRequests.WithLabelValues(scanner, "infected"),
			failed:   s.scannerRequests.WithLabelValues(scanner, "failed"),
			duration: s.scannerDuration.WithLabelValues(scanner),
		}
		s.scanners[scanner] = c
	}
	s.scannersMu.Unlock()
	switch result {
	case "infected":
		c.infected.Inc()
	case "failed":
		c.failed.Inc()
	default:
		c.ok.Inc()
	}
	c.duration.Observe(took.Seconds())
}

// Logged counts a log line of amavis level level.
func (s *Set) Logged(level int) {
	if s == nil {
		return
	}
	var name string
	switch {
	case level <= -3:
		name = "Crit"
	case level == -2:
		name = "Err"
	case level == -1:
		name = "Warning"
	case level == 0:
		name = "Notice"
	case level <= 2:
		name = "Info"
	default:
		name = "Debug"
	}
	s.logEntries[name].Inc()
}

// Reloaded counts a configuration reload.
func (s *Set) Reloaded(ok bool) {
	if s == nil {
		return
	}
	s.reloads[ok].Inc()
	if ok {
		s.reloadOK.Set(1)
		s.reload.SetToCurrentTime()
	} else {
		s.reloadOK.Set(0)
	}
}

// sessionTable holds the sessions in progress with their state, as amavisd-nanny shows amavis's children.
type sessionTable struct {
	mu    sync.Mutex
	procs map[*Proc]struct{}
	next  int64
}

// Proc is one session: its state letter and the log id of its task. It is changed by its own
// session and read by scrapes, through atomics.
type Proc struct {
	No    int64
	Start time.Time
	state atomic.Uint32 // the letter
	since atomic.Int64  // unix nanoseconds of the last change
	id    atomic.Pointer[string]
	bar   atomic.Uint64 // the last 8 letters this task went through, oldest in the high byte
}

// State letters of amavis's register_proc calls (Amavis.pm, Amavis::In::SMTP), shown by
// amavisd-nanny.
const (
	StateAccept     = 'A' // connection accepted, waiting for a command
	StateMail       = 'm' // MAIL FROM received
	StateData       = 'd' // receiving DATA
	StateCheck      = '=' // checking begins
	StateDecode     = 'D' // decoding
	StateVirus      = 'V' // virus scanning
	StateSpam       = 'S' // spam checking
	StateResults    = 'r' // deciding per recipient
	StateQuarantine = 'Q' // quarantine and notifications
	StateForward    = 'F' // forwarding
	StateDone       = '.' // content checking done
)

// stateNames label the sessions gauge.
var stateNames = map[rune]string{
	StateAccept: "accept", StateMail: "mail", StateData: "data", StateCheck: "check", StateDecode: "decode",
	StateVirus: "virus", StateSpam: "spam", StateResults: "results", StateQuarantine: "quarantine",
	StateForward: "forward", StateDone: "done",
}

// Enter registers a new session in state A (nil when metrics are off).
func (s *Set) Enter() *Proc {
	if s == nil {
		return nil
	}
	return s.procs.enter()
}

// Leave removes a session.
func (s *Set) Leave(pr *Proc) {
	if s != nil {
		s.procs.leave(pr)
	}
}

// Sessions lists the sessions in progress, oldest first.
func (s *Set) Sessions() []ProcState { return s.procs.snapshot() }

func (p *sessionTable) enter() *Proc {
	pr := &Proc{Start: time.Now()}
	pr.Set(StateAccept, "")
	p.mu.Lock()
	if p.procs == nil {
		p.procs = map[*Proc]struct{}{}
	}
	p.next++
	pr.No = p.next
	p.procs[pr] = struct{}{}
	p.mu.Unlock()
	return pr
}

func (p *sessionTable) leave(pr *Proc) {
	p.mu.Lock()
	delete(p.procs, pr)
	p.mu.Unlock()
}

// Set moves the session to state, for task id (a log id; "" keeps the current one).
func (pr *Proc) Set(state rune, id string) {
	if pr == nil {
		return
	}
	pr.state.Store(uint32(state))
	pr.since.Store(time.Now().UnixNano())
	bar := pr.bar.Load()
	if id != "" {
		if old := pr.id.Load(); old == nil || *old != id {
			pr.id.Store(&id)
			bar = 0
		}
	}
	pr.bar.Store(bar<<8 | uint64(byte(state)))
}

// ProcState is a snapshot of one session for `amavisd nanny`.
type ProcState struct {
	No    int64
	State string // the letter
	Task  string // the log id
	Since time.Time
	Bar   string
}

func (p *sessionTable) snapshot() []ProcState {
	p.mu.Lock()
	out := make([]ProcState, 0, len(p.procs))
	for pr := range p.procs {
		st := ProcState{No: pr.No, State: string(rune(pr.state.Load())), Since: time.Unix(0, pr.since.Load())}
		if id := pr.id.Load(); id != nil {
			st.Task = *id
		}
		for b := pr.bar.Load(); b != 0; b <<= 8 {
			if c := byte(b >> 56); c != 0 {
				st.Bar += string(c)
			}
		}
		out = append(out, st)
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b ProcState) int { return cmp.Compare(a.No, b.No) })
	return out
}

type sessionCollector struct {
	procs *sessionTable
	desc  *prometheus.Desc
}

func (c *sessionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *sessionCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{}
	for _, name := range stateNames {
		counts[name] = 0
	}
	for _, st := range c.procs.snapshot() {
		if name, ok := stateNames[[]rune(st.State)[0]]; ok {
			counts[name]++
		}
	}
	for name, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), name)
	}
}
