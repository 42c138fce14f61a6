package main

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
)

// eicar is the standard anti-virus test string; it is split so that this
// source file is not itself reported by a scanner.
const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR` + `-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// Envelope of every benchmark message: a remote sender to a local
// recipient (mydomain is localdomain in both daemons' configurations).
const (
	envFrom = "sender@example.org"
	envTo   = "user@localdomain"
)

// header returns a plausible header block of an inbound message.
func header(subject, contentType string) string {
	return "Return-Path: <" + envFrom + ">\n" +
		"Received: from mail.example.org (mail.example.org [192.0.2.25])\n" +
		"\tby mx.localdomain (Postfix) with ESMTPS id 4XyZ1234abc\n" +
		"\tfor <" + envTo + ">; Sun, 22 Nov 2026 10:00:00 +0000 (UTC)\n" +
		"From: Sender Example <" + envFrom + ">\n" +
		"To: User <" + envTo + ">\n" +
		"Subject: " + subject + "\n" +
		"Date: Sun, 22 Nov 2026 10:00:00 +0000\n" +
		"Message-ID: <bench." + strings.ReplaceAll(subject, " ", ".") + "@example.org>\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: " + contentType + "\n"
}

// prose returns n bytes of plain text in lines of at most 72 characters.
func prose(n int) string {
	words := strings.Fields("the quarterly figures are attached please review them before the " +
		"meeting on thursday and send any corrections to the finance team")
	var b strings.Builder
	line := 0
	for i := 0; b.Len() < n; i++ {
		w := words[i%len(words)]
		if line+len(w)+1 > 72 {
			b.WriteString("\n")
			line = 0
		} else if line > 0 {
			b.WriteString(" ")
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String()[:n-1] + "\n"
}

// base64Lines encodes data in 76-character lines as MIME requires.
func base64Lines(data []byte) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	return b.String() + enc + "\n"
}

// plainMessage is a single text/plain message of exactly size bytes.
func plainMessage(size int) []byte {
	h := header("plain text", "text/plain; charset=utf-8") + "Content-Transfer-Encoding: 7bit\n\n"
	return []byte(h + prose(size-len(h)))
}

// attachmentMessage is a multipart/mixed message: a short text part and one
// base64 attachment of the given content and file name.
func attachmentMessage(subject, filename, mimeType string, content []byte) []byte {
	const boundary = "=_bench_boundary_7f3a"
	return []byte(header(subject, `multipart/mixed; boundary="`+boundary+`"`) + "\n" +
		"This is a multi-part message in MIME format.\n\n" +
		"--" + boundary + "\n" +
		"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n" +
		prose(600) + "\n" +
		"--" + boundary + "\n" +
		fmt.Sprintf("Content-Type: %s; name=%q\n", mimeType, filename) +
		"Content-Transfer-Encoding: base64\n" +
		fmt.Sprintf("Content-Disposition: attachment; filename=%q\n\n", filename) +
		base64Lines(content) + "\n" +
		"--" + boundary + "--\n")
}

// largeMessage is a message of about size bytes whose bulk is a binary
// attachment, so that MIME decoding has real work to do. The attachment is
// pseudo-random (fixed seed: the same bytes every run).
func largeMessage(size int) []byte {
	overhead := len(attachmentMessage("with attachment", "figures.dat", "application/octet-stream", nil))
	// base64 makes 3 bytes into 4 characters plus a newline every 76.
	n := (size - overhead) * 3 * 76 / (4 * 77)
	return attachmentMessage("with attachment", "figures.dat", "application/octet-stream", randomBytes(n, 1))
}

// eicarMessage is a small message with EICAR as a text attachment (a name
// and type no banned-file rule matches: only the virus scan catches it).
func eicarMessage() []byte {
	return attachmentMessage("test file", "eicar.txt", "text/plain", []byte(eicar))
}

// attachedMessage is a message with one pseudo-random binary attachment of n bytes, base64
// encoded (7 MiB make a message of about 10 MB).
func attachedMessage(n int) []byte {
	return attachmentMessage("large attachment", "archive.dat", "application/octet-stream", randomBytes(n, 3))
}

// randomBytes are n pseudo-random bytes, the same for the same seed on every run.
func randomBytes(n int, seed uint64) []byte {
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed+1))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	return data
}
