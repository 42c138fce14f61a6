package quarantine

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Stored is a quarantined message opened for release: the envelope read back from our leading
// fields, and the rest of the file (from our Received line on) to be re-sent.
type Stored struct {
	Path         string
	Sender       string   // bare
	Recipients   []string // X-Envelope-To
	Blocked      []string // X-Envelope-To-Blocked; all recipients when the field is absent
	QuarantineID string   // X-Quarantine-ID without brackets; "" when missing
	Body         io.Reader
	closers      []io.Closer
}

// Close releases the file.
func (s *Stored) Close() error {
	var err error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if e := s.closers[i].Close(); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// safeMailFile is what a release request may name (amavis's rule), relative to QUARANTINEDIR.
var safeMailFile = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9/_.+-]*$`)

// maxLeadingFields bounds what we read before the message proper starts.
const maxLeadingFields = 1 << 20

// Find resolves a release request to a file under QUARANTINEDIR. mailFile, when given, is
// taken relative to QUARANTINEDIR as amavis does; if it names no file and has no directory
// part, the subdirectory of quarantine_subdir_levels is tried too, so that amavisd-release
// works with the bare names the log shows. Without mailFile the usual names of mailID are
// tried (virus-, banned-, spam-...gz, badh-, ...). gz selects the .gz variants first.
func (s *Store) Find(mailID, mailFile string, gz bool) (string, error) {
	if s.Dir == "" {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return "", errors.New("Config variable $QUARANTINEDIR is empty")
	}
	var cands []string
	if mailFile != "" {
		if !safeMailFile.MatchString(mailFile) || strings.Contains(mailFile+"/", "../") {
			//lint:ignore ST1005 amavis's own text, which log parsers and clients match
			return "", fmt.Errorf("Unsafe filename '%s'", mailFile)
		}
		cands = append(cands, mailFile)
		if !strings.Contains(mailFile, "/") {
			cands = append(cands, mailID[:1]+"/"+mailFile)
		}
	} else {
		sub := ""
		if s.SubdirLevels >= 1 {
			sub = mailID[:1] + "/"
		}
		names := []string{"virus-", "banned-", "badh-", "unchecked-", "spam-", "clean-", "archive-", ""}
		suffixes := []string{"", ".gz"}
		if gz {
			suffixes = []string{".gz", ""}
		}
		for _, sfx := range suffixes {
			for _, pfx := range names {
				cands = append(cands, sub+pfx+mailID+sfx)
			}
		}
	}
	for _, c := range cands {
		p := filepath.Join(s.Dir, c)
		if fi, err := os.Lstat(p); err == nil {
			if !fi.Mode().IsRegular() {
				//lint:ignore ST1005 amavis's own text, which log parsers and clients match
				return "", fmt.Errorf("File %s is not a plain file", p)
			}
			return p, nil
		}
	}
	//lint:ignore ST1005 amavis's own text, which log parsers and clients match
	return "", fmt.Errorf("File %s does not exist", filepath.Join(s.Dir, cands[0]))
}

// Open reads the leading fields of a quarantine file (gzip when its name ends in .gz).
func Open(path string) (*Stored, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st := &Stored{Path: path, closers: []io.Closer{f}}
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		z, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			//lint:ignore ST1005 amavis's own text, which log parsers and clients match
			return nil, fmt.Errorf("Can't open gzipped file %s: %v", path, err)
		}
		st.closers = append(st.closers, z)
		r = z
	}
	return st.read(r)
}

// OpenReader reads the leading fields of a stored message that comes from elsewhere than a
// file (the sql: quarantine); name is for messages, Close closes r.
func OpenReader(name string, r io.ReadCloser) (*Stored, error) {
	st := &Stored{Path: name, closers: []io.Closer{r}}
	return st.read(r)
}

func (st *Stored) read(r io.Reader) (*Stored, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	rest, err := st.readLeading(br)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("Error reading file %s: %v", st.Path, err)
	}
	st.Body = io.MultiReader(strings.NewReader(rest), br)
	return st, nil
}

// readLeading consumes our known leading fields and returns the text of the first field that
// is not ours (the start of what is re-sent). As amavis, it also skips our X-Amavis-* and
// X-Spam-* fields that lie between.
func (st *Stored) readLeading(br *bufio.Reader) (string, error) {
	haveBlocked := false
	defer func() {
		if !haveBlocked {
			st.Blocked = st.Recipients
		}
	}()
	read := 0
	// the field being collected, with its line ends; appended to, as concatenating strings
	// copies it once per continuation line (thousands for a long X-Envelope-To)
	var field []byte
	for {
		line, err := br.ReadString('\n')
		read += len(line)
		if read > maxLeadingFields {
			return "", errors.New("leading header fields too long")
		}
		if err != nil && err != io.EOF {
			return "", err
		}
		if len(field) > 0 && line != "" && (line[0] == ' ' || line[0] == '\t') {
			field = append(field, line...)
			if err == nil {
				continue
			}
			line = ""
		}
		if len(field) > 0 && !st.known(string(field), &haveBlocked) {
			return string(field) + line, nil
		}
		field = field[:0]
		if line == "" || line == "\n" || line == "\r\n" {
			return line, nil // the end of the header section, or of the file
		}
		field = append(field, line...)
		if err == io.EOF {
			if st.known(string(field), &haveBlocked) {
				return "", nil
			}
			return string(field), nil
		}
	}
}

// known takes one of our leading fields and reports whether it was one.
func (st *Stored) known(field string, haveBlocked *bool) bool {
	name, value, ok := strings.Cut(field, ":")
	if !ok {
		return false
	}
	value = strings.TrimSpace(strings.NewReplacer("\r\n", "", "\n", "").Replace(value))
	switch n := strings.ToLower(name); {
	case n == "delivered-to":
	case n == "return-path" || n == "x-envelope-from":
		if st.Sender == "" {
			if a := parseAddrs(value); len(a) > 0 {
				st.Sender = a[0]
			}
		}
	case n == "x-envelope-to":
		st.Recipients = append(st.Recipients, parseAddrs(value)...)
	case n == "x-envelope-to-blocked":
		st.Blocked = append(st.Blocked, parseAddrs(value)...)
		*haveBlocked = true
	case n == "x-quarantine-id":
		st.QuarantineID = strings.TrimSuffix(strings.TrimPrefix(value, "<"), ">")
	case strings.HasPrefix(n, "x-amavis-") && ourAmavisField[n]:
	case strings.HasPrefix(n, "x-spam-") || strings.HasPrefix(n, "x-crm114-"):
	default:
		return false
	}
	return true
}

var ourAmavisField = map[string]bool{"x-amavis-hold": true, "x-amavis-alert": true, "x-amavis-modified": true,
	"x-amavis-penpals": true, "x-amavis-policybank": true, "x-amavis-os-fingerprint": true}

// parseAddrs takes "<a@b>,\n <c@d>" apart; quoted local parts may hold commas and brackets.
func parseAddrs(s string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		if s[i] != '<' {
			continue
		}
		var b strings.Builder
		inQuote := false
		j := i + 1
		for ; j < len(s); j++ {
			c := s[j]
			if c == '\\' && inQuote && j+1 < len(s) {
				b.WriteByte(c)
				b.WriteByte(s[j+1])
				j++
				continue
			}
			if c == '"' {
				inQuote = !inQuote
			}
			if c == '>' && !inQuote {
				break
			}
			b.WriteByte(c)
		}
		out = append(out, unquoteLocal(b.String()))
		i = j
	}
	return out
}

// unquoteLocal turns `"a b"@c` back into `a b@c`, the bare form we keep addresses in.
func unquoteLocal(a string) string {
	if !strings.HasPrefix(a, `"`) {
		return a
	}
	end := strings.LastIndex(a, `"@`)
	if end <= 0 {
		return a
	}
	local := strings.NewReplacer(`\\`, `\`, `\"`, `"`).Replace(a[1:end])
	return local + a[end+1:]
}
