package conf

// LogPolicy: amavis's log templates.
type LogPolicy struct {
	// LogRecipTempl is $log_recip_templ: left out, amavis's built-in template writes one line
	// per recipient after the main one ("Passed CLEAN, <s> -> <r>, Hits: -, ..."); "" (amavis's
	// undef, as Debian sets it) writes none. Other templates are not supported.
	LogRecipTempl *string `toml:"log_recip_templ"`
}

func (p *LogPolicy) validate() error {
	if p.LogRecipTempl != nil && *p.LogRecipTempl != "" {
		return invalid("log_recip_templ", "only amavis's built-in template (the key left out) or \"\" (no per-recipient lines) is supported")
	}
	return nil
}

// LogRecipLines reports whether the per-recipient log lines are written.
func (p *LogPolicy) LogRecipLines() bool { return p.LogRecipTempl == nil }
