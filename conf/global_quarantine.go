package conf

import "fmt"

// QuarantineGlobal holds the process-wide quarantine settings (those Amavis::Out::Local uses).
type QuarantineGlobal struct {
	// QUARANTINEDIR: where local: quarantine files go; "" = local: quarantine does nothing.
	QUARANTINEDIR string `toml:"QUARANTINEDIR"`
	// QuarantineSubdirLevels 1 puts a file under a subdirectory named by the first character of
	// its mail_id; 0 puts it directly in QUARANTINEDIR.
	QuarantineSubdirLevels SubdirLevels `toml:"quarantine_subdir_levels"`
}

// SubdirLevels is quarantine_subdir_levels: amavis knows 0 and 1.
type SubdirLevels int

// UnmarshalTOML rejects values other than 0 and 1 with the key's name.
func (s *SubdirLevels) UnmarshalTOML(v any) error {
	n, ok := v.(int64)
	if !ok || (n != 0 && n != 1) {
		return fmt.Errorf("quarantine_subdir_levels must be 0 or 1, is %v", v)
	}
	*s = SubdirLevels(n)
	return nil
}
