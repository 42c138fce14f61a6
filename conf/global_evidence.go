package conf

// EvidenceGlobal: what is kept of a message whose processing failed.
type EvidenceGlobal struct {
	// AllowPreservingEvidence keeps the temporary directory of a message that failed in
	// processing (a 451), logged "PRESERVING EVIDENCE in <dir>", as Amavis::TempDir does.
	AllowPreservingEvidence bool `toml:"allow_preserving_evidence"`
}

func (e *EvidenceGlobal) setDefaults() { e.AllowPreservingEvidence = true }
