package lookup

import (
	"context"
	"errors"
	"testing"
)

// recordsByAddr is a server that knows a few addresses; down makes it fail.
type recordsByAddr struct {
	recs  map[string]Record
	down  bool
	asked []string
}

func (r *recordsByAddr) Fetch(_ context.Context, addr string) (Record, error) {
	r.asked = append(r.asked, addr)
	if r.down {
		return nil, errors.New("connection refused")
	}
	return r.recs[addr], nil
}

func TestFetchedFieldsOverrideConfiguredTables(t *testing.T) {
	srv := &recordsByAddr{recs: map[string]Record{
		"a@example.com": {
			{"bypass_virus_checks": nil, "spam_tag_level": "3.5", "virus_quarantine_to": "q@example.com  "},
			{"bypass_virus_checks": "Y", "spam_tag_level": "1", "local": "N"},
		},
		"b@example.com": {{"bypass_virus_checks": "n ", "spam_tag_level": "x"}},
	}}
	f, err := Prefetch(context.Background(), srv, []string{"a@example.com", "b@example.com", "a@example.com", "c@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if len(srv.asked) != 3 {
		t.Errorf("asked %v, want each address once", srv.asked)
	}
	bypass := NewMaps(Const(false)).Prepend(f.Field("bypass_virus_checks", FieldBool))
	local := NewMaps(Const(false)).Prepend(f.Field("local", FieldBoolDefaultTrue))
	level := NewMaps(Const(int64(2))).Prepend(f.Field("spam_tag_level", FieldNumber))
	to := NewMaps().Prepend(f.Field("virus_quarantine_to", FieldString))
	o := Options{}
	for _, c := range []struct {
		m    Maps
		addr string
		want Value
	}{
		{bypass, "a@example.com", true}, // the first row's NULL defers to the second row
		{bypass, "b@example.com", false},
		{bypass, "c@example.com", false}, // no record: the configured table answers
		{local, "a@example.com", false},
		{local, "b@example.com", true}, // rows without the field: true (B1)
		{local, "c@example.com", false},
		{level, "a@example.com", 3.5},
		{level, "b@example.com", int64(2)}, // not a number: no answer from the server
		{to, "a@example.com", "q@example.com"},
	} {
		if v, _, _ := c.m.Lookup(c.addr, o); v != c.want {
			t.Errorf("%v for %s = %#v, want %#v", c.m.tables[0], c.addr, v, c.want)
		}
	}
}

func TestPrefetchFailureIsReturned(t *testing.T) {
	srv := &recordsByAddr{down: true}
	if _, err := Prefetch(context.Background(), srv, []string{"a@example.com"}); err == nil {
		t.Fatal("Prefetch succeeded against a server that is down")
	}
}
