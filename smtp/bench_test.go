package smtp

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

var benchBody = func() []byte {
	var b bytes.Buffer
	for b.Len() < 1<<20 {
		b.WriteString("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n")
		b.WriteString(".a line that needs a stuffing dot\r\n")
	}
	return b.Bytes()
}()

// BenchmarkDataReader: dot-unstuffing 1 MB of DATA.
func BenchmarkDataReader(b *testing.B) {
	var wire bytes.Buffer
	bw := bufio.NewWriter(&wire)
	dw := &dotWriter{w: bw}
	dw.Write(benchBody)
	dw.close()
	bw.Flush()
	src := bytes.NewReader(wire.Bytes())
	br := bufio.NewReaderSize(src, 64<<10)
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		src.Reset(wire.Bytes())
		br.Reset(src)
		dr := NewDataReader(br)
		for {
			if _, err := dr.Read(buf); err != nil {
				break
			}
		}
		if dr.Size() != int64(len(benchBody)) {
			b.Fatal(dr.Size())
		}
	}
}

// BenchmarkDotWriter: dot-stuffing 1 MB on the way to the next hop.
func BenchmarkDotWriter(b *testing.B) {
	bw := bufio.NewWriterSize(io.Discard, 64<<10)
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		dw := &dotWriter{w: bw}
		for off := 0; off < len(benchBody); off += 64 << 10 {
			dw.Write(benchBody[off:min(off+64<<10, len(benchBody))])
		}
		dw.close()
	}
}

// BenchmarkParseMail: the MAIL command parser with parameters.
func BenchmarkParseMail(b *testing.B) {
	line := "MAIL FROM:<alice@sender.example.org> SIZE=2048 BODY=8BITMIME RET=HDRS ENVID=QQ314159"
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, args, _ := ParseCommand(line)
		_, params, ok := parsePath(mailArgs, args)
		if ps, _ := parseParams(params); !ok || len(ps) != 4 || !strings.HasPrefix(args, "FROM") {
			b.Fatal(ps)
		}
	}
}
