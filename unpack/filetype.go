package unpack

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gabriel-vasile/mimetype"
)

// Short types are what amavis's @map_full_type_to_short_type_maps makes of file(1)'s
// output; we compute them from magic numbers in-process instead of running file(1).

const sniffLen = 4096

// detectFile types the file at path; mail reports a text that is an RFC 822 message.
func detectFile(path string) (types []string, mail bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	var buf [sniffLen]byte
	n, err := io.ReadFull(f, buf[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, false, err
	}
	if n == 0 {
		return []string{"empty"}, false, nil
	}
	if t := detect(buf[:n]); t != nil {
		return t, (t[0] == "asc" || t[0] == "txt") && looksLikeMail(buf[:n]), nil
	}
	// ISO 9660 has its signature at 32769
	var iso [5]byte
	if _, err := f.ReadAt(iso[:], 32769); err == nil && string(iso[:]) == "CD001" {
		return []string{"iso"}, false, nil
	}
	return fallback(buf[:n]), false, nil
}

// mailFields are header fields that make a text a message (file(1) "RFC 822 mail text").
var mailFields = []string{"from", "to", "subject", "date", "received", "return-path", "message-id",
	"mime-version", "content-type", "delivered-to", "reply-to", "cc"}

// looksLikeMail tells whether text opens with a header of at least two fields, one of them a
// mail field: such a text is walked as a message whatever its declared type, as a client
// opening a .eml attachment would.
func looksLikeMail(b []byte) bool {
	n, known := 0, false
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case len(line) == 0:
			return n >= 2 && known
		case line[0] == ' ' || line[0] == '\t':
			if n == 0 {
				return false
			}
		case isFieldStart(line):
			n++
			name := strings.ToLower(string(bytes.TrimSpace(line[:bytes.IndexByte(line, ':')])))
			if slices.Contains(mailFields, name) {
				known = true
			}
		case n == 0 && bytes.HasPrefix(line, []byte("From ")):
		default:
			return false
		}
	}
	return false
}

func has(b []byte, off int, magic string) bool {
	return len(b) >= off+len(magic) && string(b[off:off+len(magic)]) == magic
}

// detect recognizes b (the head of a file) by magic number; nil when it cannot tell.
func detect(b []byte) []string {
	switch {
	case has(b, 0, "MZ"):
		return peType(b)
	case has(b, 0, "\x7fELF"):
		return elfType(b)
	case has(b, 0, "PK\x03\x04"), has(b, 0, "PK\x05\x06"), has(b, 0, "PK\x07\x08"):
		return []string{"zip"}
	case has(b, 0, "Rar!\x1a\x07"):
		return []string{"rar"}
	case has(b, 0, "7z\xbc\xaf\x27\x1c"):
		return []string{"7z"}
	case has(b, 0, "\x1f\x8b"):
		return []string{"gz"}
	case has(b, 0, "BZh") && len(b) > 3 && b[3] >= '1' && b[3] <= '9':
		return []string{"bz2"}
	case has(b, 0, "\xfd7zXZ\x00"):
		return []string{"xz"}
	case has(b, 0, "\x28\xb5\x2f\xfd"):
		return []string{"zst"}
	case has(b, 0, "\x04\x22\x4d\x18"), has(b, 0, "\x02\x21\x4c\x18"):
		return []string{"lz4"}
	case has(b, 0, "\x1f\x9d"):
		return []string{"Z"}
	case has(b, 0, "\x1f\x9e"), has(b, 0, "\x1f\x9f"):
		return []string{"F"}
	case has(b, 0, "\x89LZO\x00\r\n\x1a\n"):
		return []string{"lzo"}
	case has(b, 0, "LRZI"):
		return []string{"lrz"}
	case isLZMA(b):
		return []string{"lzma"}
	case has(b, 257, "ustar"), isV7Tar(b):
		return []string{"tar"}
	case has(b, 0, "070707"), has(b, 0, "070701"), has(b, 0, "070702"),
		has(b, 0, "\xc7\x71"), has(b, 0, "\x71\xc7"):
		return []string{"cpio"}
	case has(b, 0, "!<arch>\ndebian-binary"):
		return []string{"deb"}
	case has(b, 0, "!<arch>\n"):
		return []string{"a"}
	case has(b, 0, "\xed\xab\xee\xdb"):
		return []string{"rpm"}
	case has(b, 0, "\x78\x9f\x3e\x22"):
		return []string{"tnef"}
	case has(b, 0, "MSCF\x00\x00\x00\x00"):
		return []string{"cab"}
	case has(b, 0, "ISc("):
		return []string{"installshield"}
	case has(b, 0, "\x60\xea") && len(b) > 4 && binary.LittleEndian.Uint16(b[2:]) <= 2600:
		return []string{"arj"}
	case len(b) > 21 && b[2] == '-' && b[3] == 'l' && (b[4] == 'h' || b[4] == 'z') && b[6] == '-':
		return []string{"lha"}
	case has(b, 20, "\xdc\xa7\xc4\xfd") && has(b, 0, "ZOO "):
		return []string{"zoo"}
	case has(b, 7, "**ACE**"):
		return []string{"ace"}
	case has(b, 0, "SIT!"), has(b, 0, "StuffIt "):
		return []string{"sit"}
	case isARC(b):
		return []string{"arc"}
	case has(b, 0, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
		// amavis says "doc" where file(1) says "Microsoft Office Document" and "cdf-ms" where
		// it says "Composite Document File V2" (what Debian 12's file(1) says of Office files):
		// a rule written for either finds it
		return []string{"doc", "cdf-ms"}
	case has(b, 0, "%PDF-"):
		return []string{"pdf"}
	case has(b, 0, `{\rtf`):
		return []string{"rtf"}
	case has(b, 0, "%!PS"):
		return []string{"ps"}
	case has(b, 0, "\xff\xd8\xff"):
		return []string{"image", "jpg"}
	case has(b, 0, "GIF87a"), has(b, 0, "GIF89a"):
		return []string{"image", "gif"}
	case has(b, 0, "\x89PNG\r\n\x1a\n"):
		return []string{"image", "png"}
	case has(b, 0, "II*\x00"), has(b, 0, "MM\x00*"):
		return []string{"image", "tif"}
	case has(b, 0, "BM") && len(b) > 18 && bytes.IndexByte([]byte{12, 40, 56, 64, 108, 124}, b[14]) >= 0 && b[15] == 0:
		return []string{"image", "bmp"}
	case has(b, 0, "ID3"), len(b) > 2 && b[0] == 0xff && (b[1] == 0xfb || b[1] == 0xf3 || b[1] == 0xf2):
		return []string{"audio", "mpa", "mp3"}
	case has(b, 0, "fLaC"):
		return []string{"audio", "flac"}
	case has(b, 0, "OggS"):
		return []string{"audio", "ogg"}
	case has(b, 0, "RIFF") && has(b, 8, "WAVE"):
		return []string{"audio", "wav"}
	case has(b, 0, "RIFF") && has(b, 8, "AVI "):
		return []string{"movie", "avi"}
	case has(b, 0, "RIFF") && has(b, 8, "ACON"):
		return []string{"movie", "ani"}
	case has(b, 0, "\x00\x00\x01\xba"):
		return []string{"movie", "mpg"}
	case has(b, 0, "\x00\x00\x01\xb3"):
		return []string{"movie", "mpv"}
	case has(b, 0, "\x1a\x45\xdf\xa3"):
		return []string{"movie", "mkv"}
	case has(b, 0, "\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
		return []string{"movie", "wmv"}
	case has(b, 4, "ftyp3g"):
		return []string{"audio", "mpa", "3gpp"}
	case has(b, 4, "ftyp"):
		return []string{"audio", "mpa", "m4a", "m4b"}
	case has(b, 0, "FWS"), has(b, 0, "CWS"), has(b, 0, "ZWS"):
		return []string{"swf"}
	case has(b, 0, "\xca\xfe\xba\xbe"):
		return []string{"java"}
	case has(b, 0, "\xd7\xcd\xc6\x9a"):
		return []string{"wmf"}
	case has(b, 0, "\xde\x12\x04\x95"), has(b, 0, "\x95\x04\x12\xde"):
		return []string{"mo"}
	}
	if t := pgpType(b); t != nil {
		return t
	}
	return textType(b)
}

// peType tells a Windows DLL from a Windows or DOS program.
func peType(b []byte) []string {
	if len(b) >= 0x40 {
		off := int(binary.LittleEndian.Uint32(b[0x3c:]))
		if off > 0 && off+24 <= len(b) && has(b, off, "PE\x00\x00") {
			if binary.LittleEndian.Uint16(b[off+22:])&0x2000 != 0 {
				return []string{"exe", "dll"}
			}
		}
	}
	return []string{"exe", "exe-ms"}
}

func elfType(b []byte) []string {
	if len(b) < 20 {
		return []string{"dat"}
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if b[5] == 2 {
		bo = binary.BigEndian
	}
	switch bo.Uint16(b[16:]) {
	case 1:
		return []string{"o"}
	case 3:
		// position-independent programs are ET_DYN too; a library has no entry point as a rule
		if len(b) >= 32 && (b[4] == 1 && bo.Uint32(b[24:]) != 0 || b[4] == 2 && bo.Uint64(b[24:]) != 0) {
			return []string{"exe", "exe-unix"}
		}
		return []string{"so"}
	}
	return []string{"exe", "exe-unix"}
}

// isLZMA recognizes the .lzma ("alone") header: properties 0x5d and a plausible dictionary size.
func isLZMA(b []byte) bool {
	if len(b) < 13 || b[0] != 0x5d {
		return false
	}
	d := binary.LittleEndian.Uint32(b[1:])
	return d >= 1<<12 && (d&(d-1) == 0 || d == 0xffffffff || (d&(d-1))&((d&(d-1))-1) == 0)
}

// isV7Tar checks the header checksum of a pre-POSIX tar header.
func isV7Tar(b []byte) bool {
	if len(b) < 512 || b[0] == 0 {
		return false
	}
	s := strings.TrimRight(strings.TrimLeft(string(b[148:156]), " "), " \x00")
	want, err := strconv.ParseInt(s, 8, 64)
	if err != nil || s == "" {
		return false
	}
	var sum int64
	for i := 0; i < 512; i++ {
		if i >= 148 && i < 156 {
			sum += ' '
		} else {
			sum += int64(b[i])
		}
	}
	return sum == want
}

func isARC(b []byte) bool {
	if len(b) < 29 || b[0] != 0x1a || b[1] == 0 || b[1] > 0x14 {
		return false
	}
	name := b[2:15]
	end := bytes.IndexByte(name, 0)
	if end <= 0 {
		return false
	}
	for _, c := range name[:end] {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// pgpType recognizes ASCII-armored and binary OpenPGP data; encrypted data gets "pgp.enc".
func pgpType(b []byte) []string {
	t := bytes.TrimLeft(b, " \t\r\n")
	switch {
	case has(t, 0, "-----BEGIN PGP MESSAGE-----"):
		return []string{"pgp", "pgp.enc"}
	case has(t, 0, "-----BEGIN PGP SIGNATURE-----"), has(t, 0, "-----BEGIN PGP PUBLIC KEY BLOCK-----"):
		return []string{"pgp", "pgp.asc"}
	case has(t, 0, "-----BEGIN PGP SIGNED MESSAGE-----"):
		return []string{"pgp"}
	}
	if len(b) < 4 {
		return nil
	}
	// a public-key or symmetric-key encrypted session key packet opens encrypted data
	switch {
	case b[0] == 0x84 && b[2] == 3, b[0] == 0x85 && b[3] == 3:
		return []string{"pgp", "pgp.enc"}
	case b[0] == 0xc1 && b[1] < 192 && b[2] == 3:
		return []string{"pgp", "pgp.enc"}
	case b[0] == 0x8c && b[2] == 4, b[0] == 0xc3 && b[1] < 192 && b[2] == 4:
		return []string{"pgp", "pgp.enc"}
	}
	return nil
}

// textType classifies text as file(1) would: ASCII is "asc", other text "txt", markup
// "html"/"xml", uuencoded "uue"; nil when b is not text.
func textType(b []byte) []string {
	if has(b, 0, "\xff\xfe") || has(b, 0, "\xfe\xff") {
		return []string{"txt"}
	}
	ascii := true
	for _, c := range b {
		if c >= 0x80 {
			ascii = false
			continue
		}
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f' && c != 0x1b && c != '\b' {
			return nil
		}
	}
	if !ascii && !utf8.Valid(trimPartialRune(b)) {
		// ISO-8859 text has no C1 controls
		for _, c := range b {
			if c >= 0x80 && c < 0xa0 {
				return nil
			}
		}
	}
	t := bytes.TrimLeft(b, " \t\r\n\ufeff")
	low := bytes.ToLower(t[:min(len(t), 64)])
	for _, tag := range htmlTags {
		if bytes.HasPrefix(low, []byte(tag)) {
			return []string{"html"}
		}
	}
	switch {
	case bytes.HasPrefix(low, []byte("<?xml")):
		if bytes.Contains(bytes.ToLower(t[:min(len(t), 1024)]), []byte("<svg")) {
			return []string{"image", "svg"}
		}
		return []string{"xml"}
	case bytes.HasPrefix(low, []byte("<svg")):
		return []string{"image", "svg"}
	case has(t, 0, "begin ") && len(findUU(t, 1)) > 0:
		return []string{"uue"}
	case bytes.HasPrefix(t, []byte("(This file must be converted with BinHex")):
		return []string{"hqx"}
	case bytes.HasPrefix(t, []byte("#!")) || !ascii:
		return []string{"txt"}
	}
	return []string{"asc"}
}

var htmlTags = []string{"<!doctype html", "<html", "<head", "<body", "<title", "<script", "<style",
	"<iframe", "<table", "<div", "<a href", "<font", "<h1", "<br", "<p>", "<!--"}

// trimPartialRune drops a multi-byte sequence cut by the sniffing window.
func trimPartialRune(b []byte) []byte {
	for i := 1; i <= 3 && i <= len(b); i++ {
		if c := b[len(b)-i]; c >= 0xc0 {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			break
		}
	}
	return b
}

// fallback asks mimetype about what our magic numbers do not cover.
func fallback(b []byte) []string {
	m := mimetype.Detect(b).String()
	if i := strings.IndexByte(m, ';'); i >= 0 {
		m = m[:i]
	}
	family, sub, _ := strings.Cut(m, "/")
	switch family {
	case "image":
		return []string{"image", strings.TrimPrefix(sub, "x-")}
	case "audio":
		return []string{"audio", strings.TrimPrefix(sub, "x-")}
	case "video":
		return []string{"movie", strings.TrimPrefix(sub, "x-")}
	}
	return []string{"dat"}
}
