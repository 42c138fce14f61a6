package conf

// VerdictPolicy: content categories, destinies, banned rules, header checks, lookups
// (owned by the verdicts work, SPEC §5, §7, §8, §14).
type VerdictPolicy struct {
	FinalVirusDestiny     Destiny `toml:"final_virus_destiny"`
	FinalBannedDestiny    Destiny `toml:"final_banned_destiny"`
	FinalUncheckedDestiny Destiny `toml:"final_unchecked_destiny"`
	FinalSpamDestiny      Destiny `toml:"final_spam_destiny"`
	FinalBadHeaderDestiny Destiny `toml:"final_bad_header_destiny"`
	SoftBounce            bool    `toml:"soft_bounce"`

	VirusScannersFailureIsFatal bool   `toml:"virus_scanners_failure_is_fatal"`
	UndecipherableSubjectTag    string `toml:"undecipherable_subject_tag"`
}

func (p *VerdictPolicy) setDefaults() {
	p.FinalVirusDestiny = D_DISCARD
	p.FinalBannedDestiny = D_DISCARD
	p.FinalUncheckedDestiny = D_PASS
	p.FinalSpamDestiny = D_PASS
	p.FinalBadHeaderDestiny = D_PASS
	p.UndecipherableSubjectTag = "***UNCHECKED*** "
}

func (p *VerdictPolicy) validate() error { return nil }
