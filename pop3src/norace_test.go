//go:build !race

package pop3src

const raceEnabled = false
