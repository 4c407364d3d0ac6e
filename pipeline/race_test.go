//go:build race

package pipeline_test

// raceEnabled: the race detector multiplies the heap and the time of the
// heap check, which then measures the detector.
const raceEnabled = true
