package hdr

import "strings"

// MessageIDs are the <...> ids of a Message-ID, In-Reply-To or References body, comments and
// blanks between them left out, as Amavis::rfc2821_2822_Tools's parse_message_id finds them; a
// body without one counts as one id, trimmed.
func MessageIDs(s string) []string {
	var ids []string
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			break
		}
		ids = append(ids, s[i:i+j+1])
		s = s[i+j+1:]
	}
	if len(ids) == 0 && strings.TrimSpace(s) != "" {
		ids = []string{strings.TrimSpace(s)}
	}
	return ids
}
