package testenv

import (
	"net"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is a tiny authoritative DNS server on a loopback UDP port, for tests that look up TXT
// records (DKIM keys): names in TXT answer with their strings, names in Silent are never
// answered (a timeout), every other name is NXDOMAIN.
type DNS struct {
	Addr string // "127.0.0.1:port"

	mu     sync.Mutex
	txt    map[string][]string
	silent map[string]bool
	conn   net.PacketConn
}

// StartDNS starts the server; it stops when the test ends.
func StartDNS(t testing.TB) *DNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: dns: %v", err)
	}
	d := &DNS{Addr: pc.LocalAddr().String(), txt: map[string][]string{}, silent: map[string]bool{}, conn: pc}
	go d.serve()
	t.Cleanup(func() { pc.Close() })
	return d
}

// SetTXT makes name answer with one TXT record holding text (split into strings of 255).
func (d *DNS) SetTXT(name, text string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.txt[canonical(name)] = []string{text}
}

// Silence makes the server drop queries for name.
func (d *DNS) Silence(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.silent[canonical(name)] = true
}

func canonical(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) + "." }

func (d *DNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, addr, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp := d.answer(buf[:n]); resp != nil {
			d.conn.WriteTo(resp, addr)
		}
	}
}

func (d *DNS) answer(q []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	question, err := p.Question()
	if err != nil {
		return nil
	}
	name := strings.ToLower(question.Name.String())
	d.mu.Lock()
	txts, found := d.txt[name]
	silent := d.silent[name]
	d.mu.Unlock()
	if silent {
		return nil
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeSuccess}
	if !found {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	b.StartQuestions()
	b.Question(question)
	b.StartAnswers()
	if found && question.Type == dnsmessage.TypeTXT {
		for _, t := range txts {
			var parts []string
			for len(t) > 255 {
				parts, t = append(parts, t[:255]), t[255:]
			}
			parts = append(parts, t)
			b.TXTResource(dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.TXTResource{TXT: parts})
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}
