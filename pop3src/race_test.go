//go:build race

package pop3src

// raceEnabled: the race detector multiplies the heap, which the heap check
// would then measure.
const raceEnabled = true
