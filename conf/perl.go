package conf

// PerlGlobal holds what only matters when the configuration is amavis's Perl (package perlconf).
type PerlGlobal struct {
	// AllowUnimplemented lets a Perl configuration load although it enables a feature amavisgo
	// does not implement yet (spam checking, SQL, LDAP, DKIM): the settings are then ignored,
	// with a warning, instead of refusing to start.
	AllowUnimplemented bool `toml:"allow_unimplemented"`
}
