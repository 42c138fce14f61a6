package ldapdb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"

	"amavisgo/conf"
	"amavisgo/lookup"
)

// maxIdle bounds the connections kept open between messages.
const maxIdle = 4

// idleTimeout closes the kept connections of a client that has not been used for that long:
// the client of a configuration replaced by a reload lets its connections go.
const idleTimeout = 5 * time.Minute

// maxEntries bounds the entries one search may return: an address has a handful of keys,
// each naming at most a few entries.
const maxEntries = 100

// Client is the directory of $default_ldap. Connections are kept open between messages, as
// an amavis child keeps its one connection, and are safe to share between messages.
type Client struct {
	p       conf.LDAPParams
	noAtDom bool
	mu      sync.Mutex
	idle    []*ldap.Conn
	expire  *time.Timer   // closes idle after idleFor without use
	idleFor time.Duration // idleTimeout; shorter in tests
}

// New makes the client of a configuration; nothing is connected yet.
func New(g *conf.LDAPGlobal) *Client {
	return &Client{p: g.DefaultLDAP, noAtDom: g.LDAPLookupsNoAtMeansDomain, idleFor: idleTimeout}
}

// Close closes the idle connections.
func (c *Client) Close() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for _, l := range idle {
		l.Close()
	}
}

// Logf receives the log lines amavis writes about its LDAP connection (a level as amavis's
// log_level, a format and its arguments).
type Logf func(level int, format string, args ...any)

// ForMessage is the lookup.Fetcher of one message. local tells whether an address is in
// local_domains_maps without the server-backed tables (bare user keys are tried only for
// those), as Amavis::Lookup::LDAP asks it; logf gets the connection's log lines.
func (c *Client) ForMessage(o lookup.Options, local func(string) bool, logf Logf) lookup.Fetcher {
	return &fetcher{c: c, o: o, local: local, logf: logf}
}

type fetcher struct {
	c     *Client
	o     lookup.Options
	local func(string) bool
	logf  Logf
}

// Fetch searches the entries of addr's keys. A directory that cannot be reached, or answers
// a search with an error other than "no such object" (a base built from a foreign %d), is an
// error, as lookup_ldap dies.
func (f *fetcher) Fetch(ctx context.Context, addr string) (lookup.Record, error) {
	keys := QueryKeys(addr, f.o, f.c.noAtDom, f.local(addr))
	filter, byAttr := expandFilter(f.c.p.QueryFilter, keys)
	req := ldap.NewSearchRequest(expandBase(f.c.p.Base, addr), scopes[f.c.p.Scope], derefs[f.c.p.Deref],
		maxEntries, f.c.p.Timeout, false, filter, requested(byAttr), nil)
	req.EnforceSizeLimit = true
	res, err := f.c.search(ctx, req, f.logf)
	if err != nil {
		return nil, err
	}
	return record(res.Entries, keys, byAttr), nil
}

// Error is a failed lookup. Its text is what amavis's lookup_ldap dies with (the MTA sees it
// in the 451); Detail adds the server's or the network's own words, for the log.
type Error struct {
	Msg string
	Err error
}

func (e *Error) Error() string { return e.Msg }

func (e *Error) Unwrap() error { return e.Err }

// Detail is the message with its cause.
func (e *Error) Detail() string { return e.Msg + ": " + e.Err.Error() }

// search runs req on an idle connection or a new one. A connection that fails with an error
// worth retrying (the server went away, is busy or unavailable) is dropped and the search
// tried once more on a new connection, as Amavis::LDAP::Connection's do_search does.
func (c *Client) search(ctx context.Context, req *ldap.SearchRequest, logf Logf) (*ldap.SearchResult, error) {
	for attempt := 0; ; attempt++ {
		l, err := c.get(ctx, attempt > 0, logf)
		if err != nil {
			return nil, err
		}
		res, err := l.Search(req)
		switch {
		case err == nil, ldap.IsErrorAnyOf(err, ldap.LDAPResultSizeLimitExceeded), errors.Is(err, ldap.ErrSizeLimitExceeded):
			c.put(l)
			return res, nil
		case ldap.IsErrorAnyOf(err, ldap.LDAPResultNoSuchObject):
			c.put(l)
			return &ldap.SearchResult{}, nil
		}
		l.Close()
		if attempt > 0 || !retryable(err) {
			return nil, &Error{Msg: "do_search: failed: " + errorName(err), Err: err}
		}
		logf(0, "NOTICE: do_search: trying again: %s", errorName(err))
	}
}

// errorName is Net::LDAP's name of err's result code (LDAP_BUSY...), as amavis logs it. A
// connection that went away is LDAP_OPERATIONS_ERROR, as Net::LDAP reports a request it could
// not send.
func errorName(err error) string {
	var le *ldap.Error
	if !errors.As(err, &le) {
		return err.Error()
	}
	switch le.ResultCode {
	case ldap.ErrorNetwork:
		return "LDAP_OPERATIONS_ERROR"
	case ldap.LDAPResultTimeLimitExceeded:
		return "LDAP_TIMELIMIT_EXCEEDED"
	case ldap.LDAPResultSizeLimitExceeded:
		return "LDAP_SIZELIMIT_EXCEEDED"
	case ldap.LDAPResultInsufficientAccessRights:
		return "LDAP_INSUFFICIENT_ACCESS"
	}
	name, ok := ldap.LDAPResultCodeMap[le.ResultCode]
	if !ok {
		return fmt.Sprintf("LDAP_%d", le.ResultCode)
	}
	return "LDAP_" + strings.ToUpper(strings.ReplaceAll(name, " ", "_"))
}

func retryable(err error) bool {
	return ldap.IsErrorAnyOf(err, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable,
		ldap.LDAPResultUnwillingToPerform, ldap.LDAPResultTimeLimitExceeded, ldap.LDAPResultOther,
		ldap.ErrorNetwork, ldap.LDAPResultServerDown, ldap.LDAPResultTimeout,
		ldap.LDAPResultConnectError, ldap.LDAPResultLocalError, ldap.LDAPResultOperationsError)
}

// get returns an idle connection, or a new one when there is none or fresh is set.
func (c *Client) get(ctx context.Context, fresh bool, logf Logf) (*ldap.Conn, error) {
	if !fresh {
		// A kept connection the server has closed is not skipped: the search on it fails and
		// is tried again on a new one, with amavis's notice.
		c.mu.Lock()
		if n := len(c.idle); n > 0 {
			l := c.idle[n-1]
			c.idle = c.idle[:n-1]
			c.mu.Unlock()
			return l, nil
		}
		c.mu.Unlock()
	}
	return c.connect(ctx, logf)
}

func (c *Client) put(l *ldap.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expire == nil {
		c.expire = time.AfterFunc(c.idleFor, c.Close)
	} else {
		c.expire.Reset(c.idleFor)
	}
	if len(c.idle) < maxIdle {
		c.idle = append(c.idle, l)
		return
	}
	l.Close()
}

// connect tries each hostname in order, then StartTLS and bind when configured, as
// Amavis::LDAP::Connection's connect_to_ldap does.
func (c *Client) connect(ctx context.Context, logf Logf) (*ldap.Conn, error) {
	timeout := time.Duration(c.p.Timeout) * time.Second
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		return nil, &Error{Msg: "connect_to_ldap: timed out", Err: ctx.Err()}
	}
	tc, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	var l *ldap.Conn
	var errs []string
	for _, h := range c.p.Hostname {
		u := c.hostURL(h)
		{
			tc = tc.Clone()
			if pu, err := url.Parse(u); err == nil {
				tc.ServerName = pu.Hostname()
			}
		}
		l, err = ldap.DialURL(u, ldap.DialWithDialer(&net.Dialer{Timeout: timeout}), ldap.DialWithTLSConfig(tc))
		if err == nil {
			break
		}
		errs = append(errs, err.Error())
	}
	hosts := strings.Join(c.p.Hostname, ", ")
	if l == nil {
		logf(-1, "connect_to_ldap: unable to connect to host %s", hosts)
		return nil, &Error{Msg: "connect_to_ldap: unable to connect", Err: fmt.Errorf("host %s: %s",
			hosts, strings.Join(errs, "; "))}
	}
	logf(3, "connect_to_ldap: connected to %s", hosts)
	l.SetTimeout(timeout)
	if c.p.TLS {
		if err := l.StartTLS(tc); err != nil {
			l.Close()
			logf(-1, "connect_to_ldap: start TLS failed: %s", errorName(err))
			return nil, &Error{Msg: "connect_to_ldap: start TLS failed", Err: err}
		}
	}
	if c.p.BindDN != "" {
		if err := l.Bind(c.p.BindDN, c.p.BindPassword); err != nil {
			l.Close()
			logf(-1, "connect_to_ldap: bind failed: %s", errorName(err))
			return nil, &Error{Msg: "connect_to_ldap: bind failed", Err: err}
		}
		logf(3, "connect_to_ldap: bind %s succeeded", c.p.BindDN)
	}
	return l, nil
}

// hostURL turns a hostname of the list into a URL: URIs stay, a path is an ldapi socket, a
// host gets the scheme and port.
func (c *Client) hostURL(h string) string {
	switch {
	case strings.Contains(h, "://"):
		return h
	case strings.HasPrefix(h, "/"):
		return "ldapi://" + url.PathEscape(h)
	}
	scheme := c.p.Scheme
	if scheme == "" {
		scheme = "ldap"
		if strings.HasPrefix(strings.ToLower(h), "ldaps") {
			scheme = "ldaps"
		}
	}
	if _, _, err := net.SplitHostPort(h); err == nil {
		return scheme + "://" + h
	}
	port := c.p.Port
	if port == 0 {
		port = 389
		if scheme == "ldaps" {
			port = 636
		}
	}
	return scheme + "://" + net.JoinHostPort(strings.Trim(h, "[]"), strconv.Itoa(port))
}

// tlsConfig is the TLS of StartTLS and ldaps: verify none accepts any certificate, as
// amavis's default does.
func (c *Client) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{InsecureSkipVerify: c.p.Verify == "none"}
	if c.p.CAFile != "" {
		pem, err := os.ReadFile(c.p.CAFile)
		if err != nil {
			return nil, &Error{Msg: "connect_to_ldap: cafile", Err: err}
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, &Error{Msg: "connect_to_ldap: cafile", Err: fmt.Errorf("%s holds no certificate", c.p.CAFile)}
		}
	}
	if c.p.ClientCert != "" {
		crt, err := tls.LoadX509KeyPair(c.p.ClientCert, c.p.ClientKey)
		if err != nil {
			return nil, &Error{Msg: "connect_to_ldap: clientcert", Err: err}
		}
		tc.Certificates = []tls.Certificate{crt}
	}
	return tc, nil
}

var scopes = map[string]int{"base": ldap.ScopeBaseObject, "one": ldap.ScopeSingleLevel, "sub": ldap.ScopeWholeSubtree}

var derefs = map[string]int{"never": ldap.NeverDerefAliases, "search": ldap.DerefInSearching,
	"find": ldap.DerefFindingBaseObj, "always": ldap.DerefAlways}

// requested are the attributes a search asks for: amavis's and those of the filter's %m.
func requested(filterAttrs []string) []string {
	out := make([]string, 0, len(Attrs)+len(filterAttrs))
	for _, a := range Attrs {
		out = append(out, a.Name)
	}
	return append(out, filterAttrs...)
}

// record turns the entries into rows, the entry whose filter attribute names the most
// specific key first, as lookup_ldap sorts them.
func record(entries []*ldap.Entry, keys, filterAttrs []string) lookup.Record {
	if len(entries) == 0 {
		return nil
	}
	pos := make(map[string]int, len(keys))
	for i, k := range keys {
		if _, ok := pos[strings.ToLower(k)]; !ok {
			pos[strings.ToLower(k)] = i
		}
	}
	type ranked struct {
		pos int
		row lookup.Row
	}
	rs := make([]ranked, 0, len(entries))
	for _, e := range entries {
		row := lookup.Row{}
		for _, a := range Attrs {
			vs := e.GetEqualFoldAttributeValues(a.Name)
			switch {
			case len(vs) == 0:
			case a.List:
				row[a.Field()] = vs
			case a.Kind == lookup.FieldBool || a.Kind == lookup.FieldBoolDefaultTrue:
				row[a.Field()] = map[bool]string{true: "Y", false: "N"}[vs[0] == "TRUE"]
			default:
				row[a.Field()] = vs[0]
			}
		}
		// The key the entry was found by ranks it; an entry found by a key the address did
		// not send (another spelling) ranks first, as Perl's undef does.
		r := ranked{row: row}
		catchAll := false
		for _, fa := range filterAttrs {
			v := e.GetEqualFoldAttributeValue(fa)
			if v == "" {
				continue
			}
			catchAll = v == "@."
			r.pos = pos[strings.ToLower(v)]
			break
		}
		// An entry without amavisLocal makes the address local (LDAPattr's B1 type, asked
		// entry by entry), except the catch-all, which says nothing about it unless it says
		// so itself (lookup_ldap's "@." rule).
		if _, ok := row["amavislocal"]; !ok {
			if catchAll {
				row["amavislocal"] = nil
			} else {
				row["amavislocal"] = "Y"
			}
		}
		rs = append(rs, r)
	}
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].pos < rs[j].pos })
	rec := make(lookup.Record, len(rs))
	for i, r := range rs {
		rec[i] = r.row
	}
	return rec
}
