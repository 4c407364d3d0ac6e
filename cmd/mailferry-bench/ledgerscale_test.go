package main

import "testing"

// TestShare: the top-up spreads its entries over the accounts evenly, to
// the last entry.
func TestShare(t *testing.T) {
	for _, tc := range []struct {
		entries, accounts int
		min, max          int
	}{
		{entries: 900000, accounts: 9999, min: 90, max: 91},
		{entries: 900000, accounts: 9000, min: 100, max: 100},
		{entries: 5, accounts: 10, min: 0, max: 1},
		{entries: 0, accounts: 3, min: 0, max: 0},
	} {
		sum, lo, hi := 0, tc.entries+1, -1
		for a := range tc.accounts {
			n := share(tc.entries, tc.accounts, a)
			sum += n
			lo, hi = min(lo, n), max(hi, n)
		}
		if sum != tc.entries || lo != tc.min || hi != tc.max {
			t.Errorf("%d entries over %d accounts: %d in all, %d to %d each; want %d, %d to %d", tc.entries, tc.accounts, sum, lo, hi,
				tc.entries, tc.min, tc.max)
		}
	}
}
