//go:build race

package unpack

// raceBuild: the race detector slows decoding about tenfold, so timed limits are checked in a
// build without it (make test runs those tests again without -race).
const raceBuild = true
