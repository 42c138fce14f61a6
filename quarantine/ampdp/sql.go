package ampdp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"amavisgo/conf"
	"amavisgo/quarantine"
)

// quarType is the request's quar_type; without one, Q when the policy quarantines to sql:, as
// Amavis::In::AMPDP infers it (amavisd-release sends only the mail_id).
func quarType(p *conf.Policy, req Request) string {
	if qt := req.Get("quar_type"); qt != "" {
		return qt
	}
	for _, m := range []string{p.VirusQuarantineMethod, p.BannedFilesQuarantineMethod, p.UncheckedQuarantineMethod,
		p.SpamQuarantineMethod, p.BadHeaderQuarantineMethod, p.CleanQuarantineMethod, p.ArchiveQuarantineMethod} {
		if strings.HasPrefix(m, "sql:") {
			return "Q"
		}
	}
	return ""
}

// openSQL opens a message of the sql: quarantine.
func (s *Server) openSQL(ctx context.Context, id string) (*quarantine.Stored, error) {
	if s.Store.SQL == nil {
		return nil, errors.New("quar_type Q: no storage_sql_dsn configured")
	}
	r, err := s.Store.SQL.Open(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("mail_id %s from SQL: %w", id, err)
	}
	return quarantine.OpenReader("sql:"+id, r)
}

// notHere is a local: quarantine file that this node does not have.
type notHere struct{ err error }

func (e *notHere) Error() string { return e.err.Error() }

// forward passes a release of a local: quarantine file this node lacks to the node that took
// the message in: its myhostname is msgs.host in the SQL log, its AM.PDP socket is in
// sql_release_peers. ok is false when there is no such node, and the request fails here.
func (s *Server) forward(ctx context.Context, req Request, id string) (resp []string, ok bool) {
	if s.Store.SQL == nil || len(s.Config.SQLReleasePeers) == 0 {
		return nil, false
	}
	host, err := s.Store.SQL.Host(ctx, id)
	if err != nil || host == s.Config.Myhostname {
		return nil, false
	}
	sock, found := s.Config.SQLReleasePeers[host]
	if !found {
		return nil, false
	}
	s.log().Info(fmt.Sprintf("release of %s passed on to %s at %s, where it was quarantined", id, host, sock))
	resp, err = exchange(ctx, sock, req)
	if err != nil {
		return failure(fmt.Errorf("node %s (%s): %w", host, sock, err)), true
	}
	return resp, true
}

// exchange sends req to the AM.PDP socket sock ("inet:host:port" or "unix:/path") and returns
// the response lines as the peer wrote them.
func exchange(ctx context.Context, sock string, req Request) ([]string, error) {
	network, addr, _ := strings.Cut(sock, ":")
	if network == "inet" {
		network = "tcp"
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(5 * time.Minute))
	}
	lines := make([]string, len(req))
	for i, a := range req {
		lines[i] = Encode(a.Name, a.Value)
	}
	if err := WriteResponse(conn, lines); err != nil {
		return nil, err
	}
	br := bufio.NewReader(conn)
	var out []string
	for size := 0; ; {
		line, err := readLine(br)
		if err != nil {
			return nil, err
		}
		if line == "" {
			return out, nil
		}
		if size += len(line); size > MaxRequest {
			return nil, ErrTooLong
		}
		out = append(out, line)
	}
}
