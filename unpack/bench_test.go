package unpack

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// plain2K is a typical 2 KB single-part text message.
func plain2K() []byte {
	var b bytes.Buffer
	b.WriteString("Return-Path: <sender@example.com>\r\nReceived: from mail.example.com (mail.example.com [192.0.2.1])\r\n" +
		"\tby mx.example.net (Postfix) with ESMTPS id 4ABCDEF\r\n\tfor <rcpt@example.net>; Mon, 1 Jan 2024 00:00:00 +0000\r\n" +
		"From: Sender <sender@example.com>\r\nTo: rcpt@example.net\r\nSubject: meeting notes\r\n" +
		"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@example.com>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")
	line := "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
	for b.Len() < 2048-len(line) {
		b.WriteString(line)
	}
	return b.Bytes()
}

func benchUnpack(b *testing.B, msg []byte) {
	dir := benchDir(b)
	email := filepath.Join(dir, "email.txt")
	if err := os.WriteFile(email, msg, 0o600); err != nil {
		b.Fatal(err)
	}
	u := New(debianLimits, nil, nil)
	b.SetBytes(int64(len(msg)))
	var before, after syscall.Rusage
	var cleanup time.Duration
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		parts := filepath.Join(dir, fmt.Sprint("parts", i))
		r, err := u.Unpack(context.Background(), email, parts)
		if err != nil || r.Hold != "" {
			b.Fatal(err, r.Hold)
		}
		if i%64 == 63 {
			b.StopTimer()
			cleanup += cleanParts(b, dir)
			b.StartTimer()
		}
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	// CPU (user+system) per message: wall time on a loaded or virtualised host says little
	cpu := cpuTime(&after) - cpuTime(&before) - cleanup
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	cleanParts(b, dir)
}

// cleanParts removes the parts directories and returns the CPU time that took.
func cleanParts(b *testing.B, dir string) time.Duration {
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "parts") {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	return cpuTime(&after) - cpuTime(&before)
}

func cpuTime(r *syscall.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// BenchmarkPlain2K: the target is under 100 µs per message.
func BenchmarkPlain2K(b *testing.B) { benchUnpack(b, plain2K()) }

// BenchmarkZip5MB: a 10 MB message holding a 5 MB zip (of random, incompressible data, so
// that the message size is the zip's) and 2.5 MB of text.
func BenchmarkZip5MB(b *testing.B) {
	rnd := rand.New(rand.NewSource(1))
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	for i := 0; i < 5; i++ {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("f%d.bin", i), Method: zip.Store})
		chunk := make([]byte, 1<<20)
		rnd.Read(chunk)
		w.Write(chunk)
	}
	zw.Close()
	msg := withAttachment("data.zip", "application/zip", zb.Bytes())
	text := strings.Repeat("filler text line for the message body, plain and boring\r\n", (10<<20-len(msg))/58)
	msg = bytes.Replace(msg, []byte("see attachment\r\n"), []byte(text), 1)
	benchUnpack(b, msg)
}

// benchDir is TEMPBASE for benchmarks: $UNPACK_BENCH_DIR (e.g. a tmpfs, as amavis sites
// mount TEMPBASE), else a temporary directory.
func benchDir(b *testing.B) string {
	base := os.Getenv("UNPACK_BENCH_DIR")
	if base == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(base, "unpack-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// BenchmarkFoldedHeader: a message whose Subject is folded over 100 kB to 4 MB; the time per
// byte stays flat (unfolding line by line into a string was quadratic: 15 s for 1 MB).
func BenchmarkFoldedHeader(b *testing.B) {
	for _, size := range []int{100 << 10, 1 << 20, 4 << 20} {
		b.Run(fmt.Sprintf("%dkB", size>>10), func(b *testing.B) { benchUnpack(b, foldedHeader(size)) })
	}
}

// headerSizes are the sizes of the hostile headers of issue 22: the cost must grow linearly
// from the first to the last.
var headerSizes = []struct {
	name string
	n    int
}{{"100k", 100 << 10}, {"1M", 1 << 20}, {"4M", 4 << 20}}

// foldedField is a field called name of about n bytes: a first line, then continuation lines
// of 40 bytes (CRLF included), the shape of a hostile folded header.
func foldedField(name string, n int) string {
	var b strings.Builder
	b.Grow(n + 80)
	b.WriteString(name + ": start\r\n")
	for b.Len() < n {
		b.WriteString("\tfolded words of a long header 0123456\r\n")
	}
	return b.String()
}

// benchHeaderSizes runs fn on an input of each size built by mk.
func benchHeaderSizes(b *testing.B, mk func(n int) []byte, fn func(b *testing.B, in []byte)) {
	for _, s := range headerSizes {
		b.Run(s.name, func(b *testing.B) {
			in := mk(s.n)
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				fn(b, in)
			}
		})
	}
}

// BenchmarkNames takes the names of a part whose header is a third each: a Content-Disposition
// filename in RFC 2231 continuations (filename*0*, filename*1*, ...), a Content-Type name that
// is one long run of RFC 2047 encoded words, and that name repeated with a different value
// thousands of times (BenchmarkFoldedHeader covers a plain folded field).
func BenchmarkNames(b *testing.B) {
	benchHeaderSizes(b, func(n int) []byte {
		var cd, ct strings.Builder
		cd.WriteString("Content-Disposition: attachment;\r\n filename*0*=utf-8''%E2%82%AC")
		for k := 1; cd.Len() < n/3; k++ {
			fmt.Fprintf(&cd, ";\r\n filename*%d*=%s", k%1000, strings.Repeat("%41b", 8))
		}
		ct.WriteString("Content-Type: application/octet-stream; name=\"")
		for ct.Len() < n/3 {
			ct.WriteString("=?utf-8?q?caf=C3=A9_?=\r\n =?utf-8?b?w6k=?=\r\n ")
		}
		ct.WriteString("x.exe\"")
		for k := 0; ct.Len() < 2*n/3; k++ {
			fmt.Fprintf(&ct, ";\r\n name=f%d.exe", k)
		}
		return []byte(cd.String() + "\r\n" + ct.String() + "\r\n\r\nbody\r\n")
	}, func(b *testing.B, in []byte) {
		w := &walker{}
		h, _ := splitHeader(in, &w.errs)
		_, params := parseStructured(h[1].value)
		p := &Part{}
		w.names(p, h, params)
		if len(p.Names) < 4 {
			b.Fatalf("names %.100q", p.Names)
		}
	})
}

// BenchmarkDecodeWordsHostile decodes a field of unterminated encoded words that all end at
// the one "?=" at its end: a decoder that rescans to it from every "=?" is quadratic.
func BenchmarkDecodeWordsHostile(b *testing.B) {
	benchHeaderSizes(b, func(n int) []byte {
		return []byte(strings.Repeat("=?a?q?x ", n/8) + "?=")
	}, func(b *testing.B, in []byte) {
		if decodeWords(string(in)) == "" {
			b.Fatal("empty")
		}
	})
}

// BenchmarkUnpack95Folded100K unpacks 95 parts each with a 100 kB folded header, about 10 MB
// (issue 22: ten times the cost of a plain 10 MB message), and BenchmarkUnpackPlain10MB
// that plain message.
func BenchmarkUnpack95Folded100K(b *testing.B) { benchUnpack(b, partsWithHeaders(95, 100<<10)) }

func BenchmarkUnpackPlain10MB(b *testing.B) { benchUnpack(b, partsWithHeaders(95, 0)) }

// partsWithHeaders is a multipart message of n text parts, each with a folded field of size
// hdr (none when 0) and a body that brings the part to about 100 kB.
func partsWithHeaders(n, hdr int) []byte {
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nTo: b@example.net\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n")
	line := "body text of the part, plain and boring, for the size of it\r\n"
	for i := 0; i < n; i++ {
		b.WriteString("--BB\r\nContent-Type: text/plain\r\n")
		if hdr > 0 {
			b.WriteString(foldedField("X-Folded", hdr))
		}
		b.WriteString("\r\n")
		for k := hdr; k < 100<<10; k += len(line) {
			b.WriteString(line)
		}
		b.WriteString("part " + fmt.Sprint(i) + "\r\n")
	}
	b.WriteString("--BB--\r\n")
	return []byte(b.String())
}

// BenchmarkDecodeBase64: the 74 KiB attachment of make bench's 100 KB load, in 76-character
// lines with CRLF, decoded to nowhere.
func BenchmarkDecodeBase64(b *testing.B) {
	data := make([]byte, 74<<10)
	rand.New(rand.NewSource(1)).Read(data)
	enc := base64.StdEncoding.EncodeToString(data)
	var src []byte
	for len(enc) > 76 {
		src = append(append(src, enc[:76]...), "\r\n"...)
		enc = enc[76:]
	}
	src = append(append(src, enc...), "\r\n"...)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if n, err := decodeBase64To(io.Discard, src, nil); err != nil || n != len(data) {
			b.Fatal(n, err)
		}
	}
}
