package notify

import (
	"encoding/hex"
	"fmt"
	"net/mail"
	"slices"
	"sort"
	"strconv"
	"strings"

	"amavisgo/delivery"
	"amavisgo/hdr"
	"amavisgo/notify/template"
)

// headerField is amavis's header_field macro (Amavis.pm's macro_header_field): the field's
// body unfolded and trimmed, message ids stripped of comments, cut to limit characters with
// "[...]" when limit > 5, CR and LF shown as \x{0D} and \x{0A}. index counts from the top
// when >= 0, from the bottom when < 0; anything else means the first field, as amavis's
// get_header_field2 takes it.
func headerField(h header, name, limit, index string) string {
	j := 0
	if v, err := strconv.Atoi(strings.TrimSpace(index)); err == nil && strings.TrimSpace(index) == index {
		j = v
	}
	s := h.get(strings.TrimSpace(name), j)
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "message-id", "resent-message-id", "in-reply-to", "references":
		if s != "" {
			s = strings.Join(hdr.MessageIDs(s), " ")
		}
	}
	if lim, err := strconv.Atoi(strings.TrimSpace(limit)); err == nil && lim > 5 && len([]rune(s)) > lim {
		s = string([]rune(s)[:lim-5]) + "[...]"
	}
	return strings.NewReplacer("\r", `\x{0D}`, "\n", `\x{0A}`).Replace(s)
}

func firstMsgID(s string) string {
	if ids := hdr.MessageIDs(s); len(ids) > 0 {
		return ids[0]
	}
	return ""
}

// rfc2822Addrs are the addresses of a header field in <> as amavis's rfc2822_from macro
// gives them: a string for one, a list for more, nothing when the field has none.
func rfc2822Addrs(body string) any {
	if body == "" {
		return nil
	}
	list, err := mail.ParseAddressList(body)
	if err != nil || len(list) == 0 {
		return nil
	}
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = delivery.Bracket(a.Address)
	}
	if len(out) == 1 {
		return out[0]
	}
	return out
}

// unique keeps the first of equal strings and drops empty ones, as amavis's unique_ref.
func unique(in []string) []string {
	out := []string{}
	for _, s := range in {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func constant(v string) template.Func { return func(...string) any { return v } }

// moreMacros adds the rest of amavis's %builtins (Amavis.pm's init_builtin_macros), so that
// each macro amavis's own and Debian's templates call has its value: the ones about spam
// checks, DKIM, SQL and archives have the values amavis gives when those are off.
func (n *Notifier) moreMacros(m *Message, h header, mv template.Macros) {
	rx := m.Received
	field := template.Func(func(a ...string) any {
		a = append(a, "", "", "")
		return headerField(h, a[1], a[2], a[3])
	})
	var remote, resp, remoteResp []string
	for _, r := range m.Recipients {
		if r.ByMTA {
			remote = append(remote, m.RemoteMTA)
			remoteResp = append(remoteResp, r.Remote.String())
		}
		if r.Reply.Code != 0 {
			resp = append(resp, r.Reply.String())
		}
	}
	var bannedParts, bannedAttrs, ruleKey, ruleComment []string
	for _, r := range m.Recipients {
		for _, b := range r.Banned {
			bannedParts = append(bannedParts, b.Path)
			bannedAttrs = append(bannedAttrs, b.Attrs)
			ruleKey = append(ruleKey, b.Rule)
			ruleComment = append(ruleComment, b.Comment)
		}
	}
	chop := func(l []string) []string {
		l = unique(l)
		if len(l) > 2 {
			l = append(l[:2:2], "...")
		}
		return l
	}
	domains := map[string]bool{}
	for _, r := range m.Recipients {
		if !r.Local {
			domains["EXT"] = true
		} else if i := strings.LastIndexByte(r.Addr, '@'); i >= 0 {
			domains[strings.ToLower(r.Addr[i+1:])] = true
		}
	}
	logDomains := make([]string, 0, len(domains))
	for d := range domains {
		logDomains = append(logDomains, d)
	}
	sort.Strings(logDomains)
	conn := m.ConnAddr
	remoteHost := "localhost"
	if conn != "" {
		remoteHost = "[" + conn + "]"
	}
	digest, _ := hex.DecodeString(m.BodyDigest)
	year, week := rx.ISOWeek()
	more := template.Macros{
		".": "", "P": "", "partition_tag": "", "parent_mail_id": "",
		"DATE": RFC2822Date(rx), "date_rfc2822_local": RFC2822Date(rx),
		"U": rx.UTC().Format("20060102T150405Z"), "date_iso8601_utc": rx.UTC().Format("20060102T150405Z"),
		"date_iso8601_local": rx.Format("20060102T150405-0700"),
		"u":                  fmt.Sprintf("%010d", rx.Unix()), "date_unix_utc": fmt.Sprintf("%010d", rx.Unix()),
		"week_iso8601": fmt.Sprintf("%04d-W%02d", year, week), "weekday": strconv.Itoa((int(rx.Weekday())+6)%7 + 1),
		"actions_performed": "", "log_domains": strings.Join(logDomains, ","),
		"rfc2822_from": rfc2822Addrs(h.get("From", 0)), "rfc2822_sender": rfc2822Addrs(h.get("Sender", 0)),
		"rfc2822_resent_from": rfc2822Addrs(h.get("Resent-From", 0)), "rfc2822_resent_sender": rfc2822Addrs(h.get("Resent-Sender", 0)),
		"header_field": field, "header_field_octets": field, "HEADER": field,
		"useragent": template.Func(func(a ...string) any {
			a = append(a, "")
			head := "User-Agent"
			body := headerField(h, head, "", "")
			if body == "" {
				head, body = "X-Mailer", headerField(h, "X-Mailer", "", "")
			}
			if body == "" {
				return nil
			}
			switch strings.ToLower(a[1]) {
			case "name":
				return head
			case "body":
				return body
			}
			return head + ": " + body
		}),
		"dsn_notify": template.Func(func(...string) any {
			if m.Sender == "" {
				return "NEVER"
			}
			merged := map[string]bool{}
			for _, r := range m.Recipients {
				if r.Notify == nil {
					merged["FAILURE"] = true
				}
				for _, k := range r.Notify {
					merged[strings.ToUpper(k)] = true
				}
			}
			keys := make([]string, 0, len(merged))
			for k := range merged {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			return strings.Join(keys, ",")
		}),
		"attachment_password": "", "body_digest": string(digest),
		"banning_rule_key": unique(ruleKey), "banning_rule_comment": unique(ruleComment), "banning_rule_rhs": []string{},
		"banned_parts": chop(bannedParts), "banned_parts_as_attr": chop(bannedAttrs),
		"A": []string{}, "SUMMARY": "", "REPORT": "", "TESTSSCORES": "", "TESTS": "",
		"ip_trace_all": []string{}, "ip_trace_public": []string{}, "ip_proto_trace_all": []string{}, "ip_proto_trace_public": []string{},
		"protocol": m.ConnProto, "client_protocol": "",
		"remote_mta": unique(remote), "smtp_response": unique(resp), "remote_mta_smtp_response": unique(remoteResp),
		"REMOTEHOSTADDR": conn, "REMOTEHOSTNAME": remoteHost,
		"AUTOLEARN": "", "ADDEDHEADERHAM": "", "ADDEDHEADERSPAM": "", "SUBJPREFIX": "",
		"supplementary_info": constant(""), "rusage": constant(""), "REQD": "-",
		"1": "0", "2": "0", "k": "0", "score_boost": "0",
		"YESNO": template.Func(func(a ...string) any {
			if len(a) > 2 {
				return a[2]
			}
			return "No"
		}),
		"YESNOCAPS": template.Func(func(a ...string) any {
			if len(a) > 2 {
				return a[2]
			}
			return "NO"
		}),
		"c": "-", "SCORE": "-", "STARS": "", "dkim": constant(""), "tls_in": "",
		"report_format": "", "feedback_type": "", "report_json": "",
		"W": template.Func(func(a ...string) any {
			if len(a) <= 1 {
				return m.Scanners
			}
			var out []string
			for _, s := range m.Scanners {
				out = append(out, s+":["+strings.Join(m.Viruses, ",")+"]")
			}
			return strings.Join(out, "; ")
		}),
	}
	for k, v := range more {
		if _, ok := mv[k]; !ok || k == "W" || k == "header_field" {
			mv[k] = v
		}
	}
}
