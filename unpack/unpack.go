// Package unpack decodes a received message into TEMPBASE/<dir>/parts the way amavisd-new's
// decompose_mail does: every MIME part and every archive member becomes a file named by us
// (p001, p002, ...), typed in-process with amavis's short types, within amavis's limits
// ($MAXLEVELS, $MAXFILES, the expansion quota), tier by tier.
//
// Where we differ from amavis 2.13, on purpose:
//   - attached messages (message/rfc822, or text that is a message) are walked too, so their
//     attachments meet the banned rules; their parts count against the quota strictly;
//   - malformed MIME is recovered as mail clients show it (see mime.go), not as MIME::Parser;
//   - types come from magic numbers, not file(1); OOXML/ODF documents are "zip" and unpacked;
//   - self-extracting zip and rar programs are unpacked in-process (amavis runs unrar/unarj);
//   - an overdrawn quota still stops decoders (amavis stops counting once it is negative).
package unpack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Limits carry amavis's variables; zero means "undef" (unlimited), except the factors
// (zero means the defaults 5 and 500).
type Limits struct {
	MaxLevels          int     // $MAXLEVELS
	MaxFiles           int     // $MAXFILES
	MinExpansionQuota  int64   // $MIN_EXPANSION_QUOTA (bytes)
	MaxExpansionQuota  int64   // $MAX_EXPANSION_QUOTA
	MinExpansionFactor float64 // $MIN_EXPANSION_FACTOR
	MaxExpansionFactor float64 // $MAX_EXPANSION_FACTOR
}

// quota is amavis's storage quota for a message of size bytes:
// max(MIN_QUOTA, size*MIN_FACTOR, min(MAX_QUOTA, size*MAX_FACTOR)), undef terms ignored.
func (l Limits) quota(size int64) int64 {
	fmin, fmax := l.MinExpansionFactor, l.MaxExpansionFactor
	if fmin == 0 {
		fmin = 5
	}
	if fmax == 0 {
		fmax = 500
	}
	upper := int64(float64(size) * fmax)
	if l.MaxExpansionQuota > 0 && l.MaxExpansionQuota < upper {
		upper = l.MaxExpansionQuota
	}
	return max(l.MinExpansionQuota, int64(float64(size)*fmin), upper)
}

// Part is one node of the decoded tree: the message, a MIME entity or an archive member.
type Part struct {
	Name       string   // our file name in parts/, "p001"...; "" for the root (the whole message)
	Path       string   // absolute path of the file holding this part's decoded bytes ("" if none)
	Type       string   // declared MIME type, lower-case ("application/zip"), "" for archive members
	Names      []string // declared names: raw and RFC2047/2231-decoded forms; archive member base names
	ShortTypes []string // amavis short types, e.g. {"exe","exe-ms"}, {"zip"}, {"txt"}
	Size       int64
	Depth      int // 0 root, 1 top-level MIME parts, ...
	Parent     *Part
	Children   []*Part
	Attrs      string // subset of "UCBDSL" (amavis part attributes)

	num  int  // issue number; 0 for the root
	mail bool // the file is an RFC 822 message (walked as one whatever its declared type)
	noUU bool // the file holds no "begin " line: no uuencoded files to look for
}

// HasAttr tells whether the part carries amavis attribute a (one of "UCBDSL").
func (p *Part) HasAttr(a byte) bool { return strings.IndexByte(p.Attrs, a) >= 0 }

func (p *Part) addAttr(a string) {
	for i := 0; i < len(a); i++ {
		if !p.HasAttr(a[i]) {
			p.Attrs += a[i : i+1]
		}
	}
}

func (p *Part) addName(n string) {
	if n != "" && !slices.Contains(p.Names, n) {
		p.Names = append(p.Names, n)
	}
}

// Result is the decoded message.
type Result struct {
	Root  *Part
	Parts []*Part // every part, the root first, then in issue order (leaves and containers)
	// Hold is non-empty when a limit was exceeded: amavis's reason text, e.g.
	// "Maximum decoding depth (14) exceeded"; the message is then CC_UNCHECKED,2.
	Hold string
	// MIMEErrors are MIME structure problems (for the bad-header check, "MIME error: ...").
	MIMEErrors []string
}

// Leaves returns the parts that have no children, in issue order. Some containers keep their
// own file too (attached messages, text with uuencoded files, self-extracting programs):
// scan every part with a Path, not only the leaves.
func (r *Result) Leaves() []*Part {
	var out []*Part
	for _, p := range r.Parts {
		if len(p.Children) == 0 && p != r.Root {
			out = append(out, p)
		}
	}
	return out
}

func (r *Result) anyAttr(a byte) bool {
	for _, p := range r.Parts {
		if p.HasAttr(a) {
			return true
		}
	}
	return false
}

// Encrypted tells whether any part is encrypted (C).
func (r *Result) Encrypted() bool { return r.anyAttr('C') }

// Undecipherable tells whether any part could not be decoded (U).
func (r *Result) Undecipherable() bool { return r.anyAttr('U') }

// Ambiguous tells whether any part has ambiguous MIME structure (B).
func (r *Result) Ambiguous() bool { return r.anyAttr('B') }

// Unpacker is built once at start-up and used concurrently by many messages.
type Unpacker struct {
	lim   Limits
	progs map[string]string // external format -> program path, "" when missing
	logf  func(format string, args ...any)
}

// New looks for the external programs on path ($PATH when empty) and logs the missing ones once.
func New(lim Limits, path []string, logf func(format string, args ...any)) *Unpacker {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if len(path) == 0 {
		path = filepath.SplitList(os.Getenv("PATH"))
	}
	u := &Unpacker{lim: lim, progs: map[string]string{}, logf: logf}
	if prlimit == "" {
		logf("prlimit (util-linux) not found: external decoders get their memory limit only once started")
	}
	for _, e := range externals {
		prog := ""
		for _, name := range e.programs {
			if prog = lookPath(name, path); prog != "" {
				break
			}
		}
		u.progs[e.format] = prog
		if prog == "" {
			logf("No decoder for %s: none of %s found, its parts are scanned as they are",
				e.format, strings.Join(e.programs, ", "))
		}
	}
	return u
}

func lookPath(name string, path []string) string {
	for _, dir := range path {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Programs reports, for start-up diagnostics, which program decodes each externally
// decoded format ("" when missing); in-process formats are reported as "internal".
func (u *Unpacker) Programs() map[string]string {
	m := map[string]string{}
	for _, d := range decoders {
		if d.run != nil {
			m[d.types[0]] = "internal"
		}
	}
	for k, v := range u.progs {
		m[k] = v
	}
	return m
}

// holdError ends all decoding: a limit was exceeded; its text is amavis's hold reason.
type holdError string

func (h holdError) Error() string { return string(h) }

// internalError is a failure of ours (disk, permissions), not of the input: Unpack returns it.
type internalError struct{ err error }

func (e internalError) Error() string { return e.err.Error() }
func (e internalError) Unwrap() error { return e.err }

// job is the state of one Unpack call; it is used by a single goroutine.
type job struct {
	u        *Unpacker
	ctx      context.Context
	dir      string
	res      *Result
	issued   int
	avail    int64 // the storage quota
	rem      int64 // what is left of it
	next     []*Part
	scratchN int
	buf      []byte
}

// Unpack decodes the message emailPath into partsDir (created here, mode 0750). Hostile or broken
// input is reported in the Result; an error means an internal failure (the caller tempfails).
func (u *Unpacker) Unpack(ctx context.Context, emailPath, partsDir string) (*Result, error) {
	if err := syscall.Mkdir(partsDir, 0o750); err != nil && err != syscall.EEXIST {
		return nil, &pathError{"mkdir", partsDir, err}
	}
	root := &Part{Path: emailPath}
	j := &job{u: u, ctx: ctx, dir: partsDir, res: &Result{Root: root}}
	err := j.run(root)
	var h holdError
	switch {
	case errors.As(err, &h):
		j.res.Hold = string(h)
	case err != nil:
		return nil, err
	}
	j.collect()
	return j.res, nil
}

// run decodes tier by tier as amavis's decompose_mail does: tier 1 is the message itself, tier
// n+1 holds what tier n produced; parts waiting at a tier deeper than MAXLEVELS put it on hold.
func (j *job) run(root *Part) error {
	if err := j.decodeMail(root); err != nil {
		return err
	}
	for tier := 2; len(j.next) > 0; tier++ {
		if j.u.lim.MaxLevels > 0 && tier > j.u.lim.MaxLevels {
			return holdError(fmt.Sprintf("Maximum decoding depth (%d) exceeded", j.u.lim.MaxLevels))
		}
		cur := j.next
		j.next = nil
		for _, p := range cur {
			if err := j.ctx.Err(); err != nil {
				return err
			}
			if err := j.decompose(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// collect lists the parts: the root, then in issue order.
func (j *job) collect() {
	var all []*Part
	var walk func(p *Part)
	walk = func(p *Part) {
		all = append(all, p)
		for _, c := range p.Children {
			walk(c)
		}
	}
	walk(j.res.Root)
	slices.SortStableFunc(all, func(a, b *Part) int { return a.num - b.num })
	j.res.Parts = all
}

// newPart attaches a new part under parent and issues its name, enforcing MAXFILES.
func (j *job) newPart(parent *Part) (*Part, error) {
	p := &Part{Parent: parent, Depth: parent.Depth + 1}
	if err := j.issue(p); err != nil {
		return nil, err
	}
	parent.Children = append(parent.Children, p)
	return p, nil
}

// issue gives p the next part name; amavis counts every issued name against MAXFILES.
func (j *job) issue(p *Part) error {
	if max := j.u.lim.MaxFiles; max > 0 && j.issued >= max {
		return holdError(fmt.Sprintf("Maximum number of files (%d) exceeded", max))
	}
	j.issued++
	p.num = j.issued
	p.Name = fmt.Sprintf("p%03d", j.issued)
	return nil
}

// charge takes n bytes from the quota. MIME decoding may overdraw (as in amavis);
// decoders may not: they get amavis's hold reason instead (also once the quota is overdrawn,
// where amavis stops counting).
func (j *job) charge(n int64, by string, mayExceed bool) error {
	if n > j.rem && !mayExceed {
		return holdError(fmt.Sprintf("Exceeded storage quota %d bytes by %s; last chunk %d bytes", j.avail, by, n))
	}
	j.rem -= n
	return nil
}

// extract writes a new member of parent from r, charging every chunk to the quota before it is
// written, so that parts/ never grows past the quota. The member is queued for the next tier.
func (j *job) extract(parent *Part, name string, r io.Reader, by string) (*Part, error) {
	p, err := j.newPart(parent)
	if err != nil {
		return nil, err
	}
	p.addName(memberName(name))
	f, err := j.create(p)
	if err != nil {
		return p, err
	}
	if j.buf == nil {
		j.buf = make([]byte, 64<<10)
	}
	var werr error
	for {
		if err := j.ctx.Err(); err != nil {
			werr = err
			break
		}
		n, rerr := io.ReadFull(r, j.buf)
		if n > 0 {
			if err := j.charge(int64(n), by, false); err != nil {
				werr = err
				break
			}
			if _, err := f.Write(j.buf[:n]); err != nil {
				werr = err
				break
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			werr = decodeError{rerr}
			break
		}
	}
	f.finish(p)
	if err := f.Close(); err != nil && werr == nil {
		werr = err
	}
	j.next = append(j.next, p)
	return p, werr
}

// decodeError is broken input inside a decoder: the part stays as it is.
type decodeError struct{ err error }

func (e decodeError) Error() string { return e.err.Error() }
func (e decodeError) Unwrap() error { return e.err }

// baseName is the last element of an archive member path, '/' or '\' separated.
func baseName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	return name
}

// memberName is the name banned rules see for an archive member: its base name, in UTF-8
// (legacy archives store names in an 8-bit code page; they are taken as ISO-8859-1).
func memberName(name string) string { return toUTF8("", []byte(baseName(name))) }

// specialMember records a member that is a link, device or other special file: metadata only.
func (j *job) specialMember(parent *Part, name, attr string, size int64) error {
	p, err := j.newPart(parent)
	if err != nil {
		return err
	}
	p.addName(memberName(name))
	p.addAttr(attr)
	p.Size = size
	return nil
}

// decompose types part p and runs the first matching decoder on it.
func (j *job) decompose(p *Part) error {
	if p.Path == "" {
		return nil
	}
	if p.Size == 0 {
		os.Remove(p.Path)
		p.Path = ""
		p.ShortTypes = []string{"empty"}
		return nil
	}
	if p.ShortTypes == nil {
		t, mail, err := detectFile(p.Path)
		if err != nil {
			return internalError{err}
		}
		p.ShortTypes, p.mail = t, mail
	}
	if slices.Contains(p.ShortTypes, "pgp.enc") {
		p.addAttr("C")
	}
	d := j.decoderFor(p)
	if d == nil {
		return nil
	}
	keep, err := d(j, p)
	var de decodeError
	switch {
	case err == nil:
	case errors.As(err, &de):
		// amavis: "Decoding of %s failed, leaving it unpacked"
		return nil
	default:
		return err
	}
	if !keep {
		if err := os.Remove(p.Path); err != nil {
			return internalError{err}
		}
		p.Path = ""
	}
	return nil
}
