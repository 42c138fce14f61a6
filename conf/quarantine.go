package conf

// QuarantinePolicy: quarantine, notifications and release (owned by the quarantine work,
// SPEC §11, §12).
type QuarantinePolicy struct {
	AuthRequiredRelease bool `toml:"auth_required_release"`
}

func (p *QuarantinePolicy) setDefaults() {
	p.AuthRequiredRelease = true
}

func (p *QuarantinePolicy) validate() error { return nil }
