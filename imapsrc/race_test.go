//go:build race

package imapsrc

// raceEnabled: the race detector multiplies the heap, which the heap check
// would then measure.
const raceEnabled = true
