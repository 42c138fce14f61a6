package unpack

import (
	"bytes"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
)

// maxMIMENesting bounds the recursion of multiparts inside one message; deeper nesting is
// written out as one leaf (and it is far beyond anything a client displays).
const maxMIMENesting = 50

// mmapMin is the size from which a file is mapped instead of read: small messages are
// cheaper to read into a pooled buffer than to map.
const mmapMin = 256 << 10

var readBufs = sync.Pool{New: func() any { b := make([]byte, mmapMin); return &b }}

// mapFile gives the bytes of a file without copying large ones: they are mapped read-only and
// the MIME walker works on offsets into them; mapped says so. release must be called when done.
func mapFile(path string) (data []byte, mapped bool, release func(), err error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, nil, &pathError{"open", path, err}
	}
	defer syscall.Close(fd)
	// a short read from a regular file is its end: small files cost one read and no fstat
	bp := readBufs.Get().(*[]byte)
	buf := (*bp)[:mmapMin]
	n := 0
	for n < len(buf) {
		k, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			readBufs.Put(bp)
			return nil, false, nil, &pathError{"read", path, err}
		}
		n += k
		if k == 0 || n < len(buf) {
			return buf[:n], false, func() { readBufs.Put(bp) }, nil
		}
	}
	readBufs.Put(bp)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, false, nil, &pathError{"stat", path, err}
	}
	size := int(st.Size)
	b, err := syscall.Mmap(fd, 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, false, nil, &pathError{"mmap", path, err}
	}
	return b, true, func() { syscall.Munmap(b) }, nil
}

// window is how much of a mapped file the walker touches before it gives the pages behind it
// back (see walker.release).
const window = 1 << 20

var pageMask = syscall.Getpagesize() - 1

// release gives back the pages of piece, a sub-slice of the mapped file, once walked: a page of
// a mapping stays in the process's resident memory until unmapped, so 32 messages of 10 MB
// would otherwise each hold their whole file in RSS while decoded (the file itself stays in
// TEMPBASE; a page touched again is mapped again from there). Pages are cut at their start, so
// that consecutive pieces give back every page once; dropping a page still in use costs only
// a minor fault when it is read again.
func (w *walker) release(piece []byte) {
	if w.mapped == nil || len(piece) == 0 {
		return
	}
	// the offset of piece in the mapping: both end at the mapping's end (two-index slicing)
	off := cap(w.mapped) - cap(piece)
	if off < 0 || off+len(piece) > len(w.mapped) {
		return
	}
	start, end := off&^pageMask, (off+len(piece))&^pageMask
	if end > start {
		syscall.Madvise(w.mapped[start:end], syscall.MADV_DONTNEED)
	}
}

// decodeMail walks the message file of root (tier 1); the top entity's type and attributes go
// to root itself, its parts become root's children.
func (j *job) decodeMail(root *Part) error {
	// The message file may be another program's (AM.PDP's mail_file): truncated while mapped,
	// reading it faults. As a panic, which the caller's recovery turns into a tempfail for this
	// message, it does not take the daemon down.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	data, mapped, unmap, err := mapFile(root.Path)
	if err != nil {
		return internalError{err}
	}
	defer unmap()
	root.Size = int64(len(data))
	j.avail = j.u.lim.quota(root.Size)
	j.rem = j.avail
	w := &walker{j: j}
	if mapped {
		w.mapped = data
	}
	err = w.entity(root, data, true, 0, "")
	j.res.MIMEErrors = append(j.res.MIMEErrors, w.errs...)
	return err
}

// decodeNested is the "mail" decoder: an attached message/rfc822 part is walked too (amavis
// does not, so attachments of forwarded mail escape its banned checks). The original is kept.
func decodeNested(j *job, p *Part) (bool, error) {
	data, mapped, unmap, err := mapFile(p.Path)
	if err != nil {
		return true, internalError{err}
	}
	defer unmap()
	w := &walker{j: j, strict: true}
	if mapped {
		w.mapped = data
	}
	err = w.entity(p, data, false, 0, "")
	return true, err
}

type walker struct {
	j    *job
	errs []string
	// strict: the quota holds (attached messages); the message itself may overdraw it
	strict bool
	// mapped is the whole file when it was mapped: its pages are given back as walked
	mapped []byte
}

func (w *walker) errorf(s string) {
	if len(w.errs) < 20 {
		w.errs = append(w.errs, s)
	}
}

// entity walks one MIME entity. With merge, the entity is parent itself (the message);
// otherwise it becomes a new part under parent. defType is the default content type.
func (w *walker) entity(parent *Part, data []byte, merge bool, nesting int, defType string) error {
	if err := w.j.ctx.Err(); err != nil {
		return err // child_timeout: a message of many parts stops between two of them
	}
	h, body := splitHeader(data, &w.errs)
	ctRaw, _ := h.get("content-type")
	ct, params := parseStructured(ctRaw)
	if ct == "" || strings.IndexByte(ct, '/') <= 0 || strings.ContainsAny(ct, " \t\"") {
		ct = defType
		if ct == "" {
			ct = "text/plain"
		}
	}
	if strings.HasPrefix(ct, "multipart/") && nesting < maxMIMENesting {
		return w.multipart(parent, h, ct, params, body, merge, nesting)
	}
	p, err := w.j.newPart(parent)
	if err != nil {
		return err
	}
	p.Type = ct
	w.names(p, h, params)
	if strings.Contains(ct[strings.IndexByte(ct, '/'):], "encrypted") {
		p.addAttr("UC")
	}
	cte, _ := h.get("content-transfer-encoding")
	cte, _ = parseStructured(cte)
	return w.writeLeaf(p, body, cte)
}

// names collects the declared names of a part: Content-Disposition filename and
// Content-Type name, each decoded (RFC 2047/2231) and raw. A hostile header can repeat a
// parameter a hundred thousand times: duplicates are dropped through a set, as the linear
// search of addName made that quadratic (100,000 names took 28 s).
func (w *walker) names(p *Part, h header, ctParams []param) {
	cd, _ := h.get("content-disposition")
	_, cdParams := parseStructured(cd)
	seen := map[string]bool{}
	add := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			p.Names = append(p.Names, n)
		}
	}
	for _, k := range []struct {
		ps  []param
		key string
	}{{cdParams, "filename"}, {ctParams, "name"}} {
		raw, dec := paramValues(k.ps, k.key)
		for i := range raw {
			add(dec[i])
			add(raw[i])
		}
	}
}

// multipart splits a multipart body on its boundary and walks the parts.
func (w *walker) multipart(parent *Part, h header, ct string, params []param, body []byte, merge bool, nesting int) error {
	c := parent
	if !merge {
		c = &Part{Parent: parent, Depth: parent.Depth + 1}
		parent.Children = append(parent.Children, c)
	}
	c.Type = ct
	if strings.Contains(ct, "encrypted") {
		c.addAttr("UC")
	}
	var bounds []string
	for _, p := range params {
		if p.attr == "boundary" {
			bounds = append(bounds, p.value)
		}
	}
	if len(bounds) > 1 {
		c.addAttr("B") // amavis: multipart with multiple boundary parameters
	}
	boundary := ""
	for _, b := range bounds {
		if b != "" && findDelimiter(body, b, 0, w.release) >= 0 {
			boundary = b
			break
		}
	}
	if boundary == "" {
		if len(bounds) == 0 || bounds[0] == "" {
			w.errorf("multipart boundary is missing, or contains CR or LF")
		} else {
			w.errorf("unexpected end of preamble")
		}
		boundary = guessBoundary(body, w.release)
	}
	if boundary == "" {
		// nothing to split on: what a client shows is the body as text
		if len(body) > 0 {
			p, err := w.j.newPart(c)
			if err != nil {
				return err
			}
			p.Type = "text/plain"
			if err := w.writeLeaf(p, body, ""); err != nil {
				return err
			}
		}
		if !merge {
			return w.j.issue(c)
		}
		return nil
	}
	pre, parts, epi, closed := splitMultipart(body, boundary, w.release)
	if len(parts) == 0 {
		w.errorf("unexpected end of preamble")
	}
	if err := w.prePost(c, "preamble", pre); err != nil {
		return err
	}
	def := ""
	if ct == "multipart/digest" {
		def = "message/rfc822"
	}
	for _, part := range parts {
		if err := w.entity(c, part, false, nesting+1, def); err != nil {
			return err
		}
	}
	if len(parts) > 0 && !closed {
		// MIME::Parser's two errors, in its order: the last part's, then the multipart's.
		w.errorf("part did not end with expected boundary")
		w.errorf("unexpected end of parts before epilogue")
	}
	if err := w.prePost(c, "epilogue", epi); err != nil {
		return err
	}
	if !merge {
		return w.j.issue(c) // containers are numbered after their parts, as in amavis
	}
	return nil
}

// prePost keeps a preamble or epilogue as a part when it could hide something: more than five
// lines or characters beyond the usual "This is a multi-part message" text.
func (w *walker) prePost(c *Part, name string, b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if bytes.Count(b, []byte("\n")) <= 5 && plainNote(b) {
		return nil
	}
	p, err := w.j.newPart(c)
	if err != nil {
		return err
	}
	p.addName(name)
	return w.writeLeaf(p, b, "")
}

func plainNote(b []byte) bool {
	for _, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			strings.IndexByte("/@:;,. \t\r\n_-", c) >= 0) {
			return false
		}
	}
	return true
}

// findDelimiter returns the offset of the first line at or after from that starts with
// "--"+boundary and continues with only "--" and/or blanks, or -1. It searches a window at a
// time and hands what it passed to release (when not nil).
func findDelimiter(body []byte, boundary string, from int, release func([]byte)) int {
	d := "--" + boundary
	for pos := from; pos < len(body); {
		end := min(len(body), pos+max(window, 2*len(d)))
		i := bytes.Index(body[pos:end], []byte(d))
		if i < 0 {
			if end == len(body) {
				return -1
			}
			// a delimiter may straddle the end of the window
			next := end - len(d) + 1
			if release != nil {
				release(body[pos:next])
			}
			pos = next
			continue
		}
		at := pos + i
		if at == 0 || body[at-1] == '\n' {
			rest := body[at+len(d):]
			if e := bytes.IndexByte(rest, '\n'); e >= 0 {
				rest = rest[:e]
			}
			rest = bytes.TrimPrefix(rest, []byte("--"))
			if len(bytes.Trim(rest, " \t\r")) == 0 {
				return at
			}
		}
		pos = at + 1
	}
	return -1
}

// splitMultipart cuts body at its delimiter lines. The line break before a delimiter belongs
// to the delimiter. A missing close delimiter ends the last part at the end of the body.
func splitMultipart(body []byte, boundary string, release func([]byte)) (pre []byte, parts [][]byte, epi []byte, closed bool) {
	d := len(boundary) + 2
	at := findDelimiter(body, boundary, 0, release)
	if at < 0 {
		return body, nil, nil, false
	}
	pre = trimEOL(body[:at])
	for at >= 0 {
		lineEnd := bytes.IndexByte(body[at:], '\n')
		isClose := bytes.HasPrefix(body[at+d:], []byte("--"))
		if lineEnd < 0 {
			return pre, parts, nil, isClose
		}
		start := at + lineEnd + 1
		if isClose {
			return pre, parts, body[start:], true
		}
		next := findDelimiter(body, boundary, start, release)
		if next < 0 {
			parts = append(parts, body[start:])
			return pre, parts, nil, false
		}
		parts = append(parts, trimEOL(body[start:next]))
		at = next
	}
	return pre, parts, nil, false
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// guessBoundary recovers a missing or wrong boundary parameter: the first "--xxx" line that
// occurs again as a delimiter is what a mail client would split on. Only the first few
// candidates are tried: each try scans the body.
func guessBoundary(body []byte, release func([]byte)) string {
	tries := 0
	for pos := 0; pos < len(body) && tries < 5; {
		e := bytes.IndexByte(body[pos:], '\n')
		line := body[pos:]
		if e >= 0 {
			line = body[pos : pos+e]
			pos += e + 1
		} else {
			pos = len(body)
		}
		line = bytes.TrimRight(line, " \t\r")
		if len(line) > 3 && line[0] == '-' && line[1] == '-' && !bytes.HasSuffix(line, []byte("--")) {
			b := string(line[2:])
			tries++
			if findDelimiter(body, b, pos, release) >= 0 {
				return b
			}
		}
	}
	return ""
}

// writeLeaf decodes the body of a leaf part by its transfer encoding into the part's file. MIME
// decoding may overdraw the quota (amavis charges it but lets the mail through).
func (w *walker) writeLeaf(p *Part, body []byte, cte string) error {
	if w.strict {
		// decoding never makes a body longer: charge its length now, refund the rest later
		if err := w.j.charge(int64(len(body)), "mime_decode", false); err != nil {
			return err
		}
		w.j.rem += int64(len(body))
	}
	f, err := w.j.create(p)
	if err != nil {
		return err
	}
	switch cte {
	case "base64":
		_, err = decodeBase64To(f, body, w.release)
	case "quoted-printable":
		_, err = decodeQPTo(f, body, w.release)
	case "x-uuencode", "uuencode", "x-uue":
		out, _, _ := decodeUU(body)
		_, err = f.Write(out)
	default:
		if cte != "" && cte != "7bit" && cte != "8bit" && cte != "binary" {
			w.errorf("Unsupported encoding '" + cte + "': using 'binary'")
		}
		for rest := body; len(rest) > 0 && err == nil; {
			n := min(len(rest), window)
			_, err = f.Write(rest[:n])
			w.release(rest[:n])
			rest = rest[n:]
		}
	}
	f.finish(p)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	w.j.charge(p.Size, "mime_decode", !w.strict)
	w.j.next = append(w.j.next, p)
	return nil
}
