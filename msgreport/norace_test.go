//go:build !race

package msgreport

const raceEnabled = false
