//go:build !race

package imapsrc

const raceEnabled = false
