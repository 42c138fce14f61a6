package conf

import "amavisgo/scanners"

// ScannersGlobal holds the virus scanners (Amavis::AV runs them). amavis lets a policy bank change
// them; we build the scanner set once at start-up and on reload, so they are process-wide here.
type ScannersGlobal struct {
	AvScanners             []scanners.Entry `toml:"av_scanners"`
	AvScannersBackup       []scanners.Entry `toml:"av_scanners_backup"`
	FirstInfectedStopsScan bool             `toml:"first_infected_stops_scan"`
}

func (s *ScannersGlobal) validate() error {
	if err := scanners.ValidateList("av_scanners", s.AvScanners); err != nil {
		return invalid("av_scanners", "%v", err)
	}
	if err := scanners.ValidateList("av_scanners_backup", s.AvScannersBackup); err != nil {
		return invalid("av_scanners_backup", "%v", err)
	}
	return nil
}
