package pipeline

// For the tests of package pipeline_test, which run them on the
// checkpoint's ledgers.
var (
	CopyRace          = copyRace
	LateCopyAdoptRace = lateCopyAdoptRace
)
