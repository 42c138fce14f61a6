//go:build !race

package unpack

const raceBuild = false
