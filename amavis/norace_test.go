//go:build !race

package amavis

const raceEnabled = false
