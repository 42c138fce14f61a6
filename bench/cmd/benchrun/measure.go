package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"amavisgo/bench/loadgen"
	"amavisgo/bench/procstat"
	"amavisgo/bench/report"
)

// load is one kind of traffic.
type load struct {
	key  string // as in -loads: 2KB, 100KB, mix
	name string // as in the outputs
	// clean is sent alone when eicarEvery is 0; otherwise every
	// eicarEvery-th message is infected.
	clean      []byte
	infected   []byte
	eicarEvery int
	engine     string // the spam engine both filters ask: "", "spamd" or "rspamd"
	// sessions, when set, replaces -sessions; messages, when set, is the count of every
	// repetition (and of the warm-up) instead of one sized from the rate: at 10 MB a message
	// the point is the memory of many at once, not a steady rate.
	sessions []int
	messages int
}

// sessionCounts are the session counts the load is measured at.
func (l load) sessionCounts(cfg *config) []int {
	if l.sessions != nil {
		return l.sessions
	}
	return cfg.sessions
}

// bigSessions is the fixed session count of the 10MB load.
const bigSessions = 32

// maxSessions is the most sessions any point of the run has (clamd's MaxThreads).
func maxSessions(cfg *config) int {
	n := slices.Max(cfg.sessions)
	if slices.Contains(cfg.loads, "10MB") {
		n = max(n, bigSessions)
	}
	return n
}

// infectedCount is how many of the first n messages of the load are infected.
func (l load) infectedCount(n int) int {
	if l.eicarEvery == 0 {
		return 0
	}
	return n / l.eicarEvery
}

// send delivers n messages of the load to addr over the given sessions and
// checks every reply: 250 for all, and for a filter "discarded" for exactly
// the infected ones (the Perl daemon's D_DISCARD reply, which ours copies).
func (l load) send(cfg *config, addr string, sessions, n int, filtered bool) (loadgen.Result, error) {
	timeout := time.Duration(cfg.seconds*20)*time.Second + 2*time.Minute
	msgs := [][]byte{l.clean}
	pick := func(int) int { return 0 }
	if l.eicarEvery > 0 {
		msgs = append(msgs, l.infected)
		pick = func(i int) int {
			if i%l.eicarEvery == l.eicarEvery-1 {
				return 1
			}
			return 0
		}
	}
	res, err := loadgen.Run(loadgen.Config{
		Addr: addr, Sessions: sessions, Count: n, From: envFrom, To: envTo,
		Messages: msgs, Pick: pick, Timeout: timeout,
	})
	if err != nil {
		return res, err
	}
	wantInfected := l.infectedCount(n)
	if !filtered {
		wantInfected = 0 // the sink takes everything
	}
	infected := 0
	if len(msgs) > 1 {
		infected = res.Discarded[1]
	}
	if infected != wantInfected || res.Discarded[0] != 0 {
		return res, fmt.Errorf("discarded %d infected and %d of %d clean messages; want %d and 0",
			infected, res.Discarded[0], res.Accepted[0], wantInfected)
	}
	return res, nil
}

// contender is one filter being measured at one load and session count.
type contender struct {
	pt   report.Point
	run  *filterRun // nil for the ceiling
	addr string
	err  error
}

// measureGroup measures every filter at one load and session count. All
// of them are started and warmed up first, then the repetitions take turns
// (ceiling, Perl, ours, ceiling, ...), so that other work on the machine
// weighs on each filter alike and the ratios stay fair. A filter that
// fails is stopped and reported; the others go on.
func measureGroup(cfg *config, env *environment, daemons map[string]filterDaemon, l load, sessions int) []*contender {
	var cs []*contender
	defer func() {
		for _, c := range cs {
			if c.run != nil {
				c.run.stop(30 * time.Second)
			}
		}
	}()
	for _, name := range cfg.filters {
		if name == report.OursSQL && (!slices.Contains(cfg.sqlLoads, l.key) || !slices.Contains(cfg.sqlSessions, sessions)) {
			continue
		}
		c := &contender{pt: report.Point{Filter: name, Load: l.name, Sessions: sessions}}
		cs = append(cs, c)
		c.err = c.prepare(cfg, env, daemons[name], l, sessions)
	}
	for rep := 1; rep <= cfg.reps; rep++ {
		for _, c := range cs {
			if c.err != nil {
				continue
			}
			s, err := measureRep(cfg, env, c.run, l, c.addr, sessions, c.pt.Messages)
			if err != nil {
				c.err = fmt.Errorf("repetition %d: %v", rep, err)
				if c.run != nil {
					c.run.stop(30 * time.Second)
				}
				continue
			}
			c.pt.Samples = append(c.pt.Samples, s)
			logf("%-7s %-16s sessions=%-2d rep %d/%d: %6d msgs %8.1f msg/s  filter %7.2f ms CPU/msg  clamd %5.2f ms/msg  peak RSS %7.1f MiB",
				c.pt.Filter, l.name, sessions, rep, cfg.reps, c.pt.Messages, s.MsgsPerSec, s.CPUms, s.ClamdCPUms, s.PeakRSSMB)
		}
	}
	return cs
}

// prepare starts the filter (none for the ceiling) and warms it up; the
// warm-up also sizes the repetitions to about cfg.seconds each.
func (c *contender) prepare(cfg *config, env *environment, d filterDaemon, l load, sessions int) error {
	c.addr = env.sink.addr
	if d != nil {
		dir := filepath.Join(env.dir, fmt.Sprintf("%s-%s-%d", c.pt.Filter, l.key, sessions))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var err error
		if c.run, err = d.start(dir, sessions, env.sink.addr, env.clamd.socket, env.spamSetup(l)); err != nil {
			return err
		}
		c.addr = c.run.addr
		if err := checkScanning(c.addr); err != nil {
			if cfg.requireAV {
				return err
			}
			env.note(c.pt.Filter+"-av", fmt.Sprintf("**%s was measured WITHOUT working virus checks** (-require-av=false): %v", c.pt.Filter, err))
		}
	}
	if l.messages > 0 {
		if _, err := l.send(cfg, c.addr, sessions, sessions, d != nil); err != nil {
			return fmt.Errorf("warm-up: %v", err)
		}
		c.pt.Messages = l.messages
		return nil
	}
	// The warm-up grows until it lasts long enough to estimate the rate:
	// a first short round is dominated by start-up costs (Perl children
	// compile on their first message, connections are opened).
	var rate float64
	for warm := max(2*sessions, cfg.warmup); ; warm *= 4 {
		res, err := l.send(cfg, c.addr, sessions, warm, d != nil)
		if err != nil {
			return fmt.Errorf("warm-up: %v", err)
		}
		rate = float64(warm) / res.Elapsed.Seconds()
		if res.Elapsed.Seconds() >= cfg.seconds/6 || warm >= cfg.maxMsgs {
			break
		}
	}
	n := int(rate * cfg.seconds)
	n = max(n, cfg.minMsgs, 4*sessions)
	n = min(n, cfg.maxMsgs)
	if l.eicarEvery > 0 {
		n = (n + l.eicarEvery - 1) / l.eicarEvery * l.eicarEvery // a whole number of mixes
	}
	c.pt.Messages = n
	return nil
}

func measureRep(cfg *config, env *environment, f *filterRun, l load, addr string, sessions, n int) (report.Sample, error) {
	var s report.Sample
	sinkBefore := env.sink.settled()
	clamdBefore, err := procstat.CPU(env.clamd.pid())
	if err != nil {
		return s, err
	}
	var dbBefore time.Duration
	if env.pg != nil {
		if dbBefore, err = procstat.CPU(env.pg.pid()); err != nil {
			return s, err
		}
	}
	var engineBefore time.Duration
	engine := env.enginePID(l)
	if engine != 0 {
		if engineBefore, err = procstat.CPU(engine); err != nil {
			return s, err
		}
	}
	var cpuBefore time.Duration
	var sampler *procstat.Sampler
	if f != nil {
		if cpuBefore, err = procstat.CPU(f.pid()); err != nil {
			return s, err
		}
		sampler = procstat.Sample(f.pid(), cfg.sampleEvery)
	}

	res, err := l.send(cfg, addr, sessions, n, f != nil)
	if sampler != nil {
		mem := sampler.Stop()
		if err == nil {
			s.PeakRSSMB = float64(peakRSS(f.pid(), mem)) / (1 << 20)
		}
	}
	if err != nil {
		return s, err
	}
	s.MsgsPerSec = float64(n) / res.Elapsed.Seconds()
	s.P50ms = float64(res.Percentile(50).Microseconds()) / 1000
	s.P99ms = float64(res.Percentile(99).Microseconds()) / 1000
	if f != nil {
		cpuAfter, err := procstat.CPU(f.pid())
		if err != nil {
			return s, err
		}
		s.CPUms = float64((cpuAfter - cpuBefore).Microseconds()) / 1000 / float64(n)
	}
	s.LoadAvg = loadAvg()
	clamdAfter, err := procstat.CPU(env.clamd.pid())
	if err != nil {
		return s, err
	}
	s.ClamdCPUms = float64((clamdAfter - clamdBefore).Microseconds()) / 1000 / float64(n)
	if env.pg != nil {
		dbAfter, err := procstat.CPU(env.pg.pid())
		if err != nil {
			return s, err
		}
		s.DBCPUms = float64((dbAfter - dbBefore).Microseconds()) / 1000 / float64(n)
	}
	if engine != 0 {
		engineAfter, err := procstat.CPU(engine)
		if err != nil {
			return s, err
		}
		s.EngineCPUms = float64((engineAfter - engineBefore).Microseconds()) / 1000 / float64(n)
	}

	// Every clean message must have reached the sink (the Perl daemon also
	// sends an admin notice per virus, so for the mix it is at least that).
	want := n - l.infectedCount(n)
	if f == nil {
		want = n
	}
	if got := env.sink.waitMessages(sinkBefore+want) - sinkBefore; got < want || (l.eicarEvery == 0 && got != want) {
		return s, fmt.Errorf("smtp-sink received %d messages, want %d", got, want)
	}
	return s, nil
}

// peakRSS is the filter's peak resident memory: for a single process its
// own high-water mark VmHWM; for a pre-forking daemon the largest sum of its
// processes' RSS seen while sampling, which is what they hold at once.
func peakRSS(root int, sampled procstat.Memory) int64 {
	if tree, err := procstat.Tree(root); err == nil && len(tree) == 1 {
		if m, err := procstat.Mem(root); err == nil {
			return max(m.HWM, sampled.RSS)
		}
	}
	return sampled.RSS
}

// loadAvg is the 1-minute load average: other work on the machine shows
// up in the spread of the rates, and reps.csv records it beside them.
func loadAvg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	x, _ := strconv.ParseFloat(f[0], 64)
	return x
}

// checkScanning sends one EICAR message, which a filter with working virus
// checks discards: the clean loads are measured only with scanning on.
func checkScanning(addr string) error {
	res, err := loadgen.Run(loadgen.Config{Addr: addr, Sessions: 1, Count: 1, From: envFrom, To: envTo,
		Messages: [][]byte{eicarMessage()}, Timeout: 2 * time.Minute})
	if err != nil {
		return fmt.Errorf("EICAR check: %v", err)
	}
	if res.Discarded[0] != 1 {
		return fmt.Errorf("EICAR check: the filter passed EICAR; virus scanning is not working")
	}
	return nil
}
