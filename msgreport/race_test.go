//go:build race

package msgreport

// raceEnabled: the race detector slows the 200,000-row heap check about
// fortyfold (minutes); it proves nothing more under it.
const raceEnabled = true
