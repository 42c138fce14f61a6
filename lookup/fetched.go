package lookup

import (
	"context"
	"regexp"
	"strings"
)

// Server-backed tables (SQL, LDAP) differ from the tables above in two ways: asking them takes
// a round trip, and it can fail. amavis asks them during its lookups and lets a failure abort
// the message with a 451 (Amavis::Lookup::SQL's lookup_sql dies). Here a message's addresses
// are fetched once, before any decision, by Prefetch; a failure there is the message's 451, and
// the tables the decisions then consult (Fetched.Field) only read what was fetched, so
// Table.Lookup stays infallible.

// Row is one entry a server-backed table returned for an address: its fields by name. A field
// present with a nil value is a NULL.
type Row map[string]Value

// Record is everything a server-backed table knows about one address: its rows, the best
// first (amavis's ORDER BY priority). A field lookup takes the first row where the field is
// not NULL, as Amavis::Lookup::SQLfield does.
type Record []Row

// Fetcher is a server-backed table: Fetch returns the record of one address (nil when the
// server has none) or an error when the server could not be asked.
type Fetcher interface {
	Fetch(ctx context.Context, addr string) (Record, error)
}

// Fetched holds the records of a message's addresses.
type Fetched struct {
	recs map[string]Record
}

// Prefetch fetches the record of each distinct address once. Any failure is returned: the
// caller tempfails the message, as amavis does when a lookup dies.
func Prefetch(ctx context.Context, f Fetcher, addrs []string) (*Fetched, error) {
	out := &Fetched{recs: make(map[string]Record, len(addrs))}
	for _, a := range addrs {
		if _, done := out.recs[a]; done {
			continue
		}
		r, err := f.Fetch(ctx, a)
		if err != nil {
			return nil, err
		}
		out.recs[a] = r
	}
	return out, nil
}

// Record is the record fetched for addr (nil when none, or addr was not fetched).
func (f *Fetched) Record(addr string) Record {
	if f == nil {
		return nil
	}
	return f.recs[addr]
}

// FieldKind says how a field's value is read, as amavis's SQLfield and LDAPattr field types.
type FieldKind int

const (
	// FieldString is a string with trailing blanks removed (amavis's 'S-').
	FieldString FieldKind = iota
	// FieldNumber is a number; a string that is not one gives no answer (amavis's 'N-').
	FieldNumber
	// FieldBool is Y/N: "N", "F", " ", "0" and NUL bytes (any case, trailing blanks) are false,
	// anything else is true (amavis's 'B-').
	FieldBool
	// FieldBoolDefaultTrue is FieldBool, and true when the rows have no such field at all (amavis's
	// 'B1', used for users.local, which the schema leaves optional).
	FieldBoolDefaultTrue
)

// Field is a Table that answers from the fetched records: the value of the named field in the
// address's first row where it is not NULL; no answer when the address has no record or
// every row's field is NULL. Prepended to a Maps it overrides the tables of the
// configuration for the addresses the server knows, as amavis puts its SQL and LDAP field
// lookups first in each *_maps.
func (f *Fetched) Field(name string, kind FieldKind) Table {
	return fieldTable{f: f, name: name, kind: kind}
}

type fieldTable struct {
	f    *Fetched
	name string
	kind FieldKind
}

var falseFlag = regexp.MustCompile(`^(?:[NnFf ]|0+|\x00+) *$`)

func (t fieldTable) Lookup(addr string, _ Options) (Value, string, bool) {
	rec := t.f.Record(addr)
	if rec == nil {
		return nil, "", false
	}
	key := "(fetched:" + t.name + ")"
	missing := true
	for _, row := range rec {
		v, ok := row[t.name]
		if !ok {
			continue
		}
		missing = false
		if v == nil {
			continue
		}
		switch t.kind {
		case FieldBool, FieldBoolDefaultTrue:
			return !falseFlag.MatchString(String(v)), key, true
		case FieldNumber:
			if n, ok := Number(v); ok {
				return n, key, true
			}
			continue
		default:
			return strings.TrimRight(String(v), " "), key, true
		}
	}
	if missing && t.kind == FieldBoolDefaultTrue {
		return true, key, true
	}
	return nil, "", false
}

// Prepend returns m with t asked first.
func (m Maps) Prepend(t Table) Maps {
	return Maps{tables: append([]Table{t}, m.tables...)}
}
