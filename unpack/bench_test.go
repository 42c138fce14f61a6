package unpack

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
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
