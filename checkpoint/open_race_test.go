package checkpoint

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// TestOpenNewFileTogether: processes that open the same new ledger at the
// same moment (two cron runs) all open it. Switching the file to WAL and
// the first migration can answer SQLITE_BUSY without calling the busy
// handler; both are retried (TestE2EOverlappingRuns failed once on the
// switch).
func TestOpenNewFileTogether(t *testing.T) {
	dir := t.TempDir()
	for round := range 10 {
		path := filepath.Join(dir, fmt.Sprintf("ledger-%d.db", round))
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := Open(context.Background(), path, nil)
				if err != nil {
					errs <- err
					return
				}
				errs <- l.Close()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}
