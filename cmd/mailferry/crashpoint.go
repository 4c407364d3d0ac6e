package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// crashpointFromEnv reads MAILFERRY_TEST_CRASHPOINT=POINT:N, used only by
// the crash tests: at the N-th time the pipeline reaches POINT ("pending",
// "appended", "committed", "deleted") the process kills itself with
// SIGKILL, exactly as `kill -9` at that moment would. Unset: nil.
func crashpointFromEnv(getenv func(string) string) (func(string), error) {
	v := getenv("MAILFERRY_TEST_CRASHPOINT")
	if v == "" {
		return nil, nil
	}
	point, nStr, ok := strings.Cut(v, ":")
	n, err := strconv.Atoi(nStr)
	if !ok || err != nil || n < 1 {
		return nil, usagef("MAILFERRY_TEST_CRASHPOINT=%q: want POINT:N", v)
	}
	var mu sync.Mutex
	seen := 0
	return func(p string) {
		if p != point {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		seen++
		if seen == n {
			fmt.Fprintf(os.Stderr, "mailferry: crashpoint %s:%d reached, killing myself\n", point, n)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}, nil
}
