//go:build race

package e2e

// raceEnabled: the tests run with -race, so the daemon is built with it too
// (its packages then come from the same build cache, and a data race in
// the daemon under Postfix's load shows up on its stderr).
const raceEnabled = true
