package conf

// TempdirGlobal holds what becomes of message directories below TEMPBASE (Amavis::TempDir).
type TempdirGlobal struct {
	// AllowPreservingEvidence keeps the directory of a message whose processing failed, for the
	// postmaster to look at; the start-up clean-up leaves such directories alone.
	AllowPreservingEvidence bool `toml:"allow_preserving_evidence"`
}

func (t *TempdirGlobal) setDefaults() { t.AllowPreservingEvidence = true }
