package amavis

import (
	"fmt"
	"testing"

	"amavisgo/internal/testenv"
	"amavisgo/smtp/smtptest"
)

// A virus or an UNCHECKED message passed to its recipient (D_PASS): the admin notice goes out
// before the message is forwarded, as Amavis.pm's do_notify_and_quarantine runs ahead of the
// delivery.
func TestAdminNoticeBeforeForwarding(t *testing.T) {
	clamd := testenv.StartClamd(t)
	scanner := fmt.Sprintf("[[av_scanners]]\nname = \"ClamAV-clamd\"\ntype = \"clamd\"\nsockets = [%q]\n"+
		"query = \"CONTSCAN {}\\n\"\nclean_pattern = '\\bOK$'\ninfected_pattern = '\\bFOUND$'\n"+
		"names_pattern = '^.*?: (?!Infected Archive)(.*) FOUND$'\n", clamd.Socket)
	for _, tc := range []struct{ name, extra, body string }{
		{"virus", `final_virus_destiny = "D_PASS"`, eicarMessages(t)["plain"]},
		{"unchecked", `final_unchecked_destiny = "D_PASS"`, "UNCHECKED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hop(t, smtptest.Options{})
			body := tc.body
			sc := scanner
			if body == "UNCHECKED" {
				body = mimeMessage("text/plain", "hello\r\n")
				down := testenv.StartClamd(t)
				down.Stop()
				sc = fmt.Sprintf("[[av_scanners]]\nname = \"ClamAV-clamd\"\ntype = \"clamd\"\nsockets = [%q]\nquery = \"CONTSCAN {}\\n\"\n", down.Socket)
			}
			td := startDaemon(t, h.Addr, tc.extra+"\nvirus_admin = \"virusalert@example.com\"\n"+sc)
			sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, body)
			msgs := h.Msgs()
			var order []string
			for _, m := range msgs {
				order = append(order, fmt.Sprint(m.Rcpts))
			}
			if len(msgs) != 2 || order[0] != "[virusalert@example.com]" || order[1] != "[x@example.com]" {
				t.Errorf("the next hop got %v, want the admin notice, then the message", order)
			}
		})
	}
}
