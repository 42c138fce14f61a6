//go:build race

package amavis

// raceEnabled scales the large-message test down: the race detector makes it ~10x slower.
const raceEnabled = true
