package unpack

import (
	"os"
	"strings"
	"testing"
)

// leafView renders the leaves that have a file as "name|content" (first declared name, "" if
// none), in issue order: what the scanners and the banned rules will see.
func leafView(t *testing.T, r *Result) []string {
	var out []string
	for _, p := range r.Leaves() {
		if p.Path == "" {
			continue
		}
		b, err := os.ReadFile(p.Path)
		if err != nil {
			t.Fatal(err)
		}
		name := ""
		if len(p.Names) > 0 {
			name = p.Names[0]
		}
		out = append(out, name+"|"+string(b))
	}
	return out
}

const topHeader = "From: a@example.com\nTo: b@example.net\nSubject: t\nMIME-Version: 1.0\n"

func TestMalformedMIME(t *testing.T) {
	tests := []struct {
		name    string
		msg     string
		want    []string // leafView
		attrs   string   // attributes expected on some part
		mimeErr string   // substring of a MIME error, "" for none expected
		names   []string // all declared names of the last leaf, when given
	}{
		{name: "well formed",
			msg:  topHeader + "Content-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\n\nhello\n--b1\nContent-Type: application/octet-stream; name=\"a.exe\"\n\nMZ\n--b1--\n",
			want: []string{"|hello", "a.exe|MZ"}},
		{name: "missing boundary parameter",
			msg:     topHeader + "Content-Type: multipart/mixed\n\n--zz\n\none\n--zz\nContent-Type: text/plain; name=x.txt\n\ntwo\n--zz--\n",
			want:    []string{"|one", "x.txt|two"},
			mimeErr: "multipart boundary is missing"},
		{name: "duplicated boundary parameter",
			msg:   topHeader + "Content-Type: multipart/mixed; boundary=\"fake\"; boundary=\"real\"\n\n--real\n\none\n--real\nContent-Disposition: attachment; filename=evil.exe\n\nMZ\n--real--\n",
			want:  []string{"|one", "evil.exe|MZ"},
			attrs: "B"},
		{name: "boundary=a=b unquoted",
			msg:  topHeader + "Content-Type: multipart/mixed; boundary=a=b\n\n--a=b\n\none\n--a=b\n\ntwo\n--a=b--\n",
			want: []string{"|one", "|two"}},
		{name: "unterminated quote",
			msg:  topHeader + "Content-Type: multipart/mixed; boundary=\"qq\n\n--qq\n\none\n--qq--\n",
			want: []string{"|one"}},
		{name: "empty parameters ;;",
			msg:  topHeader + "Content-Type: multipart/mixed;; ;boundary=\"s\";; charset=us-ascii\n\n--s\nContent-Type: text/plain;; name=\"n.txt\"\n\none\n--s--\n",
			want: []string{"n.txt|one"}},
		{name: "missing closing boundary",
			msg:     topHeader + "Content-Type: multipart/mixed; boundary=\"c\"\n\n--c\n\none\n--c\nContent-Type: text/plain; name=last.txt\n\nlast line\n",
			want:    []string{"|one", "last.txt|last line\n"},
			mimeErr: "part did not end with expected boundary"},
		{name: "base64 with garbage",
			msg:  topHeader + "Content-Type: application/octet-stream; name=e.com\nContent-Transfer-Encoding: base64\n\nWDVP!IVAl QEFQ\n*WzRcUFpYNTQo UF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo=\n",
			want: []string{"e.com|" + eicar}},
		{name: "base64 without padding",
			msg:  topHeader + "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\naGVsbG8\n",
			want: []string{"|hello"}},
		{name: "base64 concatenated blocks",
			msg:  topHeader + "Content-Type: application/octet-stream\nContent-Transfer-Encoding: BASE64\n\naGk=\nIHRoZXJl\n",
			want: []string{"|hi there"}},
		{name: "header line without colon",
			msg:  topHeader + "Content-Type: multipart/mixed; boundary=\"h\"\n\n--h\nX-Junk: 1\nthis line has no colon\nContent-Type: application/x-msdownload; name=\"run.exe\"\n\nMZ\n--h--\n",
			want: []string{"run.exe|MZ"}, mimeErr: "couldn't parse head"},
		{name: "quoted-printable lenient",
			msg:  topHeader + "Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\nsoft=\nbreak =3d=3D =zz end=  \nx\n",
			want: []string{"|softbreak == =zz endx\n"}},
		{name: "RFC 2047 names",
			msg:   topHeader + "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: application/octet-stream; name=\"=?UTF-8?B?ZsO8ci5leGU=?=\"\nContent-Disposition: attachment; filename=\"=?iso-8859-1?Q?f=FCr=2Eexe?=\"\n\nMZ\n--b--\n",
			want:  []string{"für.exe|MZ"},
			names: []string{"für.exe", "=?iso-8859-1?Q?f=FCr=2Eexe?=", "=?UTF-8?B?ZsO8ci5leGU=?="}},
		{name: "RFC 2231 continuations with charset",
			msg:   topHeader + "Content-Type: application/octet-stream\nContent-Disposition: attachment;\n filename*0*=iso-8859-1''r%E9sum;\n filename*1*=%E9.pdf.exe\n\nMZ\n",
			want:  []string{"résumé.pdf.exe|MZ\n"},
			names: []string{"résumé.pdf.exe", "iso-8859-1''r%E9sum%E9.pdf.exe"}},
		{name: "RFC 2231 single extended",
			msg:  topHeader + "Content-Type: application/octet-stream; name*=UTF-8''%E2%82%AC.scr\n\nMZ\n",
			want: []string{"€.scr|MZ\n"}},
		{name: "nested multiparts",
			msg:  topHeader + "Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/alternative; boundary=i\n\n--i\n\nplain\n--i\nContent-Type: text/html\n\n<html>\n--i--\n--o\nContent-Type: application/zip; name=z.zip\n\nPK\n--o--\n",
			want: []string{"|plain", "|<html>", "z.zip|PK"}},
		{name: "digest defaults to message/rfc822",
			msg:  topHeader + "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: inner\nFrom: x@y\nContent-Type: text/plain; name=inner.txt\n\ninner body\n--d--\n",
			want: []string{"inner.txt|inner body"}},
		{name: "CRLF line ends",
			msg:  strings.ReplaceAll(topHeader+"Content-Type: multipart/mixed; boundary=\"r\"\n\n--r\n\none\n--r\nContent-Type: text/plain; name=two.txt\n\ntwo\n--r--\n", "\n", "\r\n"),
			want: []string{"|one", "two.txt|two"}},
		{name: "delimiter with trailing blanks",
			msg:  topHeader + "Content-Type: multipart/mixed; boundary=t\n\n--t  \n\none\n--t\t\n\ntwo\n--t-- \n",
			want: []string{"|one", "|two"}},
		{name: "odd case and spacing in parameters",
			msg:  topHeader + "Content-Type: Multipart/MIXED ; BOUNDARY = \"w\"\n\n--w\nContent-Type: TEXT/Plain ; NAME = \"up.txt\"\n\nup\n--w--\n",
			want: []string{"up.txt|up"}},
		{name: "part without header",
			msg:  topHeader + "Content-Type: multipart/mixed; boundary=n\n\n--n\nno header here\n--n--\n",
			want: []string{"|no header here"}},
		{name: "unknown transfer encoding",
			msg:     topHeader + "Content-Type: text/plain\nContent-Transfer-Encoding: x-strange\n\nraw\n",
			want:    []string{"|raw\n"},
			mimeErr: "Unsupported encoding 'x-strange'"},
		{name: "uuencoded block in text",
			msg:  topHeader + "Content-Type: text/plain\n\nsee below\n" + uuencode("virus.com", []byte(eicar)) + "regards\n",
			want: []string{"virus.com|" + eicar}},
		{name: "attachments of an attached message",
			msg:  topHeader + "Content-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: message/rfc822\n\nSubject: fwd\nContent-Type: multipart/mixed; boundary=m2\n\n--m2\nContent-Type: application/octet-stream; name=inner.exe\n\nMZ\n--m2--\n--m--\n",
			want: []string{"inner.exe|MZ"}},
		{name: "no Content-Type at all",
			msg:  topHeader + "\nplain text body\n",
			want: []string{"|plain text body\n"}},
		{name: "suspicious preamble kept",
			msg:  topHeader + "Content-Type: multipart/mixed; boundary=p\n\n<script>alert(1)</script>\n--p\n\nbody\n--p--\n",
			want: []string{"preamble|<script>alert(1)</script>", "|body"}},
		{name: "boundary never found",
			msg:     topHeader + "Content-Type: multipart/mixed; boundary=nothere\n\njust text\n",
			want:    []string{"|just text\n"},
			mimeErr: "unexpected end of preamble"},
		{name: "wrong boundary, guessed from body",
			msg:  topHeader + "Content-Type: multipart/mixed; boundary=wrong\n\n--right\n\none\n--right\nContent-Type: text/plain; name=g.txt\n\ntwo\n--right--\n",
			want: []string{"|one", "g.txt|two"}, mimeErr: "unexpected end of preamble"},
		{name: "encrypted type",
			msg:   topHeader + "Content-Type: multipart/encrypted; boundary=e; protocol=\"application/pgp-encrypted\"\n\n--e\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n--e\nContent-Type: application/octet-stream\n\n-----BEGIN PGP MESSAGE-----\nhQEMA\n-----END PGP MESSAGE-----\n--e--\n",
			want:  []string{"|Version: 1", "|-----BEGIN PGP MESSAGE-----\nhQEMA\n-----END PGP MESSAGE-----"},
			attrs: "C"},
		{name: "folded header and mbox From line",
			msg:  "From someone Mon Jan  1 00:00:00 2024\n" + topHeader + "Content-Type: multipart/mixed;\n\tboundary=\"f\"\n\n--f\nContent-Type: application/octet-stream;\n name=\"folded.bat\"\n\necho\n--f--\n",
			want: []string{"folded.bat|echo"}},
	}
	if len(tests) < 20 {
		t.Fatal("the issue asks for at least 20 malformed-MIME cases")
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := unpackMsg(t, debianLimits, []byte(tc.msg))
			got := leafView(t, r)
			if strings.Join(got, "\x00") != strings.Join(tc.want, "\x00") {
				t.Fatalf("leaves\n got %q\nwant %q\n%s", got, tc.want, describe(r))
			}
			if tc.attrs != "" {
				found := false
				for _, p := range r.Parts {
					found = found || strings.Contains(p.Attrs, tc.attrs)
				}
				if !found {
					t.Errorf("no part has attribute %s\n%s", tc.attrs, describe(r))
				}
			} else if r.Ambiguous() || r.Encrypted() {
				t.Errorf("unexpected attributes\n%s", describe(r))
			}
			joined := strings.Join(r.MIMEErrors, "; ")
			if tc.mimeErr != "" && !strings.Contains(joined, tc.mimeErr) {
				t.Errorf("MIME errors %q lack %q", r.MIMEErrors, tc.mimeErr)
			}
			if tc.mimeErr == "" && len(r.MIMEErrors) > 0 {
				t.Errorf("unexpected MIME errors %q", r.MIMEErrors)
			}
			if tc.names != nil {
				l := r.Leaves()
				var last *Part
				for _, p := range l {
					if p.Path != "" {
						last = p
					}
				}
				if strings.Join(last.Names, "|") != strings.Join(tc.names, "|") {
					t.Errorf("names %q, want %q", last.Names, tc.names)
				}
			}
			if r.Hold != "" {
				t.Errorf("hold %q", r.Hold)
			}
		})
	}
}
