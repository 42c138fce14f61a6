package conf

// AMPDPPolicy holds the settings of content checks asked over AM.PDP (Amavis::In::AMPDP).
type AMPDPPolicy struct {
	// PrependHeaderFieldsHdridx is the index a milter inserts our added header fields at
	// (insheader): 0 puts them on top, 1 below a first field another milter added.
	PrependHeaderFieldsHdridx int `toml:"prepend_header_fields_hdridx"`
}
