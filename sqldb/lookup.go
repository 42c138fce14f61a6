package sqldb

import (
	"context"
	"fmt"
	"strings"

	"amavisgo/conf"
	"amavisgo/lookup"
)

// Lookups are amavis's per-user lookups in lookup_sql_dsn (Amavis::Lookup::SQL): a
// recipient's users and policy rows (sel_policy), and the recipient's white/black list entry
// for the sender (sel_wblist).
type Lookups struct {
	pool *Pool
	g    *conf.SQLGlobal
}

// NewLookups makes the lookups of configuration c.
func NewLookups(p *Pool, c *conf.Config) *Lookups { return &Lookups{pool: p, g: &c.SQLGlobal} }

// Pool is the lookups' database.
func (l *Lookups) Pool() *Pool { return l.pool }

// WBField is the field of a recipient's record that holds wblist.wb for the sender.
const WBField = "wb"

// ForMessage is the lookup.Fetcher of one message: a recipient's record is its sel_policy
// rows, then, when it has a users.id, a row with WBField from sel_wblist for sender. local
// tells whether an address is in local_domains_maps (bare user keys are tried only for those).
func (l *Lookups) ForMessage(sender string, o lookup.Options, local func(string) bool) lookup.Fetcher {
	return &fetcher{l: l, sender: sender, o: o, local: local}
}

type fetcher struct {
	l      *Lookups
	sender string
	o      lookup.Options
	local  func(string) bool
}

func (f *fetcher) Fetch(ctx context.Context, addr string) (lookup.Record, error) {
	var rec lookup.Record
	err := f.l.pool.Do(ctx, func(ctx context.Context, c Conn) error {
		rec = nil
		if q := clause(f.l.g, "sel_policy"); q != "" {
			rows, err := query(ctx, c, q, addr, f.o, f.local(addr), nil)
			if err != nil {
				return fmt.Errorf("sel_policy: %w", err)
			}
			rec = rows
		}
		var id any
		for _, r := range rec {
			if v := r["id"]; v != nil {
				id = v
				break
			}
		}
		if q := clause(f.l.g, "sel_wblist"); q != "" && id != nil {
			rows, err := query(ctx, c, q, f.sender, f.o, f.local(f.sender), id)
			if err != nil {
				return fmt.Errorf("sel_wblist: %w", err)
			}
			for _, r := range rows {
				if v := r[WBField]; v != nil {
					rec = append(rec, lookup.Row{WBField: v})
					break
				}
			}
		}
		return nil
	})
	return rec, err
}

// QueryKeys are amavis's SQL lookup keys for addr (make_query_keys for SQL, README.lookups):
// user+ext@domain, user@domain, for a local address also user+ext and user, then @domain,
// @.domain, @.parent... and @. ; the local part is lower-cased unless
// localpart_is_case_sensitive.
func QueryKeys(addr string, o lookup.Options, local bool) []string {
	lp, dom := lookup.SplitAddress(addr)
	if !o.LocalpartCaseSensitive {
		lp = strings.ToLower(lp)
	}
	domain := lookup.NormDomain(dom)
	user, ext := lookup.SplitLocalpart(lp, o.RecipientDelimiter)
	var keys []string
	add := func(k string) {
		for _, x := range keys {
			if x == k {
				return
			}
		}
		keys = append(keys, k)
	}
	if ext != "" {
		add(user + ext + "@" + domain)
	}
	add(user + "@" + domain)
	if local {
		if ext != "" {
			add(user + ext)
		}
		add(user)
	}
	add("@" + domain)
	if !strings.HasPrefix(domain, "[") {
		for d := domain; d != ""; {
			add("@." + d)
			_, rest, ok := strings.Cut(d, ".")
			if !ok {
				break
			}
			d = rest
		}
	}
	add("@.")
	return keys
}

// expand replaces %k by one placeholder per key and %a %l %u %e %d by one each, collecting
// the arguments in statement order; the first ? gets first (users.id for sel_wblist), later
// ones an empty string, as amavis's lookup_sql.
func expand(q, addr string, o lookup.Options, local bool, first any) (string, []any) {
	keys := QueryKeys(addr, o, local)
	lp, dom := lookup.SplitAddress(addr)
	lcl := strings.ToLower(lp)
	user, ext := lookup.SplitLocalpart(lcl, o.RecipientDelimiter)
	vals := map[byte]string{'a': keys[0], 'l': lp, 'u': user, 'e': ext, 'd': lookup.NormDomain(dom)}
	var b strings.Builder
	var args []any
	firstUsed := false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '?':
			if !firstUsed && first != nil {
				args = append(args, first)
			} else {
				args = append(args, "")
			}
			firstUsed = true
			b.WriteByte('?')
		case c == '%' && i+1 < len(q) && q[i+1] == 'k':
			for j, k := range keys {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteByte('?')
				args = append(args, []byte(k))
			}
			i++
		case c == '%' && i+1 < len(q) && strings.IndexByte("alued", q[i+1]) >= 0:
			b.WriteByte('?')
			args = append(args, []byte(vals[q[i+1]]))
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), args
}

// query runs a lookup statement for addr and returns its rows, each column by name (a later
// column of the same name wins, hence amavis's "users.*, policy.*, users.id").
func query(ctx context.Context, c Conn, q, addr string, o lookup.Options, local bool, first any) (lookup.Record, error) {
	stmt, args := expand(q, addr, o, local, first)
	rows, err := c.Query(ctx, stmt, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out lookup.Record
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := lookup.Row{}
		for i, col := range cols {
			v := vals[i]
			switch x := v.(type) {
			case []byte:
				v = string(x)
			case float32:
				v = float64(x)
			case int32:
				v = int64(x)
			}
			row[strings.ToLower(col)] = v
		}
		out = append(out, row)
	}
	return out, rows.Err()
}
