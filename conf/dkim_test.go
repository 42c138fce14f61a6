package conf

import "testing"

func TestDKIMSettings(t *testing.T) {
	c, err := Parse("a.toml", []byte(`enable_dkim_signing = true
myauthservid = "auth.example.com"

[[dkim_key]]
domain = "example.com"
selector = "sel"
key_file = "/etc/amavis/sel.pem"
options = { t = "s" }

[[dkim_signature_options_bysender_maps]]
"Sub.Example.com" = { d = "example.com", ttl = 864000 }
"." = { c = "relaxed/relaxed" }

[signed_header_fields]
to = 1

[policy_bank.ORIGINATING]
enable_dkim_verification = true
signed_header_fields = { sender = 2 }
`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.EnableDKIMSigning || c.EnableDKIMVerification || c.Myauthservid != "auth.example.com" || len(c.DKIMKeys) != 1 || c.DKIMKeys[0].Options["t"] != "s" {
		t.Errorf("settings %+v %+v", c.DKIMPolicy, c.DKIMGlobal)
	}
	o := c.DKIMSignatureOptionsBysenderMaps
	if ttl, _ := o[0]["sub.example.com"].String("ttl"); len(o) != 1 || ttl != "864000" || o[0]["."]["c"] != "relaxed/relaxed" {
		t.Errorf("options %v", o)
	}
	if c.SignedHeaderFields["to"] != 1 || c.SignedHeaderFields["from"] != 2 || c.SignedHeaderFields["sender"] != 0 || c.DKIMMinimumKeyBits != 1024 {
		t.Errorf("signed_header_fields %v", c.SignedHeaderFields)
	}
	b, err := c.Bank(&c.Policy, "ORIGINATING")
	if err != nil {
		t.Fatal(err)
	}
	if !b.EnableDKIMVerification || b.SignedHeaderFields["sender"] != 2 || c.SignedHeaderFields["sender"] != 0 || b.SignedHeaderFields["to"] != 1 {
		t.Errorf("bank: %v, base %v", b.SignedHeaderFields, c.SignedHeaderFields)
	}

	for text, want := range map[string]string{
		"[[dkim_key]]\ndomain = \"example.com\"\nselector = \"s\"\n": `a.toml:1: key "dkim_key": entry 1: domain, selector and key_file are required`,
		"[[dkim_key]]\ndomain = \"example.com\"\nselector = \"s\"\nkey_file = \"a\"\n[[dkim_key]]\ndomain = \"Example.com\"\nselector = \"S\"\nkey_file = \"b\"\n": `a.toml:1: key "dkim_key": selector S for domain Example.com already in use`,
		"[[dkim_signature_options_bysender_maps]]\n\".\" = { z = \"1\" }\n":                                                                                        `a.toml:1: key "dkim_signature_options_bysender_maps": table 1, ".": unknown signature option "z" (a c d h i q s ttl x)`,
	} {
		if _, err := Parse("a.toml", []byte(text)); err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %s", text, err, want)
		}
	}
}
