package conf

// HeaderFixPolicy: the repairs amavis makes to the header section of mail it forwards
// (Amavis::Out::EditHeader's write_header).
type HeaderFixPolicy struct {
	// AllowFixingImproperHeader enables the repairs at all: bare CRs are removed, and the two
	// below apply.
	AllowFixingImproperHeader bool `toml:"allow_fixing_improper_header"`
	// AllowFixingImproperHeaderFolding drops all-whitespace continuation lines.
	AllowFixingImproperHeaderFolding bool `toml:"allow_fixing_improper_header_folding"`
	// AllowFixingLongHeaderLines truncates header lines over 998 characters.
	AllowFixingLongHeaderLines bool `toml:"allow_fixing_long_header_lines"`
}

func (p *HeaderFixPolicy) setDefaults() {
	p.AllowFixingImproperHeader = true
	p.AllowFixingImproperHeaderFolding = true
	p.AllowFixingLongHeaderLines = true
}
