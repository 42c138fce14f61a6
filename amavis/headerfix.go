package amavis

import (
	"bytes"
	"io"

	"amavisgo/conf"
)

// Repairs of forwarded mail, as amavis makes them: the header section is mended field by field
// (Amavis::Out::EditHeader's write_header) and NUL bytes are sanitized on the wire
// (Amavis::Out::SMTP::Protocol), each counted and logged at level 0.

// headerRepairs counts what repairHeader changed: dropped all-whitespace continuation lines,
// fields with lines truncated to 998 characters, fields with bare CRs removed.
type headerRepairs struct{ whitespace, long, bareCR int }

// maxHeaderLine is RFC 5322's limit on a line, without its CRLF.
const maxHeaderLine = 998

// repairHeader mends a complete header section (lines ending in CRLF or LF) as amavis does for
// mail it passes on when allow_fixing_improper_header is on: an all-whitespace line is dropped
// (allow_fixing_improper_header_folding), bare CRs are removed, and a line longer than 998
// characters is cut to 995 and "..." (allow_fixing_long_header_lines). It returns h itself when
// nothing needed mending.
func repairHeader(p *conf.Policy, h []byte) ([]byte, headerRepairs) {
	var rep headerRepairs
	if !p.AllowFixingImproperHeader || !needsRepair(p, h) {
		return h, rep
	}
	out := make([]byte, 0, len(h))
	fieldCR, fieldLong := false, false
	endField := func() {
		if fieldCR {
			rep.bareCR++
		}
		if fieldLong {
			rep.long++
		}
		fieldCR, fieldLong = false, false
	}
	for len(h) > 0 {
		line, eol := splitLine(h)
		h = h[len(line)+len(eol):]
		// bare CRs go first, as amavis's tr/\r//d comes before its unfolding: a line of CRs
		// alone is then empty, and an empty line would end the header section early
		hadCR := bytes.IndexByte(line, '\r') >= 0
		if hadCR {
			line = bytes.ReplaceAll(line, []byte("\r"), nil)
		}
		if len(line) == 0 || p.AllowFixingImproperHeaderFolding && allBlank(line) {
			rep.whitespace++
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			endField()
		}
		fieldCR = fieldCR || hadCR
		if p.AllowFixingLongHeaderLines && len(line) > maxHeaderLine {
			line = append(line[:maxHeaderLine-3:maxHeaderLine-3], "..."...)
			fieldLong = true
		}
		out = append(append(out, line...), eol...)
	}
	endField()
	return out, rep
}

// needsRepair tells quickly whether repairHeader has anything to do.
func needsRepair(p *conf.Policy, h []byte) bool {
	for len(h) > 0 {
		line, eol := splitLine(h)
		h = h[len(line)+len(eol):]
		if p.AllowFixingImproperHeaderFolding && allBlank(line) || bytes.IndexByte(line, '\r') >= 0 ||
			p.AllowFixingLongHeaderLines && len(line) > maxHeaderLine {
			return true
		}
	}
	return false
}

// splitLine cuts the first line off b: its content and its line end (CRLF, LF, or none).
func splitLine(b []byte) (line, eol []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	if i > 0 && b[i-1] == '\r' {
		return b[:i-1], b[i-1 : i+1]
	}
	return b[:i], b[i : i+1]
}

// allBlank: a line of spaces and tabs only (never the first line of a field: it has a name).
func allBlank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

// logRepairs writes amavis's INFO lines for the repairs made to one forwarded copy.
func logRepairs(tl *taskLog, rep headerRepairs) {
	if rep.whitespace > 0 {
		tl.Logf(0, "INFO: unfolded %d illegal all-whitespace continuation lines", rep.whitespace)
	}
	if rep.long > 0 {
		tl.Logf(0, "INFO: truncated %d header line(s) longer than 998 characters", rep.long)
	}
	if rep.bareCR > 0 {
		tl.Logf(0, "INFO: removed bare CR from %d header line(s)", rep.bareCR)
	}
}

// nulSanitizer writes a NUL byte as C0 80 (its "modified UTF-8" form), as amavis forwards mail:
// IMAP servers refuse NULs.
type nulSanitizer struct {
	w io.Writer
	n int
}

var modifiedUTF8NUL = []byte{0xC0, 0x80}

func (s *nulSanitizer) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, 0)
		if i < 0 {
			_, err := s.w.Write(p)
			return total, err
		}
		if _, err := s.w.Write(p[:i]); err != nil {
			return 0, err
		}
		if _, err := s.w.Write(modifiedUTF8NUL); err != nil {
			return 0, err
		}
		s.n++
		p = p[i+1:]
	}
	return total, nil
}
