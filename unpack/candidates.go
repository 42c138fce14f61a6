package unpack

// Candidates are the programs tried for an externally decoded format, in the order they are
// looked for; nil for a format decoded internally. Start-up diagnostics name them for a
// missing decoder, as amavis's "No ext program for .F, tried: ..." does.
func Candidates(format string) []string {
	for _, e := range externals {
		if e.format == format {
			return e.programs
		}
	}
	return nil
}
