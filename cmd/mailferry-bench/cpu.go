package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is the unit of the times in /proc/PID/stat and /proc/stat
// (USER_HZ, which Linux fixes at 100 for every architecture's user ABI).
const clockTicks = 100

// cpuUse is the CPU time spent during one measured pass, in seconds, by
// who spent it, and the wall time of the pass.
type cpuUse struct {
	Wall float64 `json:"wall"`
	// Client is the process under test: this benchmark itself for the
	// ceilings (our POP3 client, go-imap, our appender), mailferry's
	// process for mailferry's runs.
	Client float64 `json:"client"`
	// Source and Dest are the Dovecot instances: the master and every
	// process under it, those that exited during the pass included.
	Source float64 `json:"source"`
	Dest   float64 `json:"dest"`
	// Machine is the busy time of every CPU of the machine (/proc/stat):
	// the above, this benchmark's own work during mailferry's runs (the
	// delay proxy, polling), the kernel's, and other users' work.
	Machine float64 `json:"machine"`
}

// ours is what the measured parties spent: the client and both servers.
func (u cpuUse) ours() float64 { return u.Client + u.Source + u.Dest }

// other is the machine's busy time that none of the measured parties
// spent (never negative: tick rounding).
func (u cpuUse) other() float64 { return max(0, u.Machine-u.ours()) }

// cpuMeter reads the CPU time of this process, of the two Dovecot
// instances and of the machine.
type cpuMeter struct {
	srcPIDFile, dstPIDFile string // Dovecot's base_dir/master.pid
}

// cpuSnapshot is the CPU time spent so far, in seconds.
type cpuSnapshot struct {
	at      time.Time
	self    float64
	src     float64
	dst     float64
	machine float64
}

// newCPUMeter finds the instances' masters by the pid files Dovecot keeps
// in its base_dir (internal/testkit/dovecot: DIR/run).
func newCPUMeter(srcDir, dstDir string) *cpuMeter {
	return &cpuMeter{
		srcPIDFile: filepath.Join(srcDir, "run", "master.pid"),
		dstPIDFile: filepath.Join(dstDir, "run", "master.pid"),
	}
}

// snapshot reads every counter. A counter that cannot be read is 0 in
// both snapshots of a pass, so that pass shows 0 for it rather than fail
// the benchmark (e.g. without /proc).
func (m *cpuMeter) snapshot() cpuSnapshot {
	s := cpuSnapshot{at: time.Now(), self: selfCPU(), machine: machineBusy()}
	procs, _ := readProcs()
	if m != nil {
		s.src = treeCPU(procs, pidFromFile(m.srcPIDFile))
		s.dst = treeCPU(procs, pidFromFile(m.dstPIDFile))
	}
	return s
}

// since is the CPU use from before to now; client is the time the client
// spent when it is not this process (a child's rusage), or negative to
// take this process's own.
func (m *cpuMeter) since(before cpuSnapshot, client float64) cpuUse {
	now := m.snapshot()
	u := cpuUse{
		Wall:    now.at.Sub(before.at).Seconds(),
		Client:  client,
		Source:  now.src - before.src,
		Dest:    now.dst - before.dst,
		Machine: now.machine - before.machine,
	}
	if client < 0 {
		u.Client = now.self - before.self
	}
	return u
}

// selfCPU is this process's user and system time.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return rusageSeconds(&ru)
}

func rusageSeconds(ru *syscall.Rusage) float64 {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// childCPU is the user and system time of a child that has been waited for.
func childCPU(ps *os.ProcessState) float64 {
	if ps == nil {
		return 0
	}
	return (ps.UserTime() + ps.SystemTime()).Seconds()
}

// machineBusy is the time all CPUs spent not idle (user, nice, system,
// irq, softirq, steal) from the "cpu" line of /proc/stat.
func machineBusy() float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	busy, _ := parseCPULine(line)
	return busy
}

// parseCPULine sums the busy fields of /proc/stat's "cpu" line: user,
// nice, system, irq, softirq and steal (guest time is inside user).
func parseCPULine(line string) (float64, error) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("not a /proc/stat cpu line: %q", line)
	}
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system [idle iowait] irq softirq steal
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("field %d of %q: %w", i, line, err)
		}
		busy += n
	}
	return float64(busy) / clockTicks, nil
}

func pidFromFile(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0
	}
	return pid
}

// procStat is what the benchmark needs of one /proc/PID/stat.
type procStat struct {
	pid, ppid int
	// ticks is the process's user and system time plus that of its
	// children it has waited for (utime+stime+cutime+cstime).
	ticks int64
}

// readProcs reads /proc/*/stat of every process; processes that exit
// meanwhile are left out.
func readProcs() ([]procStat, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []procStat
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if p, err := parseProcStat(data); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// parseProcStat parses /proc/PID/stat (proc(5)): "pid (comm) state ppid
// ... utime stime cutime cstime ...", fields 1, 4 and 14–17; comm may hold
// spaces and parentheses, so the fields are counted from the last ')'.
func parseProcStat(data []byte) (procStat, error) {
	var p procStat
	open, end := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if open < 1 || end < open {
		return p, errors.New("malformed /proc/PID/stat")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data[:open])))
	if err != nil {
		return p, fmt.Errorf("pid in /proc/PID/stat: %w", err)
	}
	f := strings.Fields(string(data[end+1:])) // f[0] is field 3 (state)
	if len(f) < 15 {
		return p, errors.New("short /proc/PID/stat")
	}
	p.pid = pid
	if p.ppid, err = strconv.Atoi(f[1]); err != nil {
		return p, fmt.Errorf("ppid in /proc/PID/stat: %w", err)
	}
	for _, i := range []int{11, 12, 13, 14} { // fields 14–17
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return p, fmt.Errorf("field %d of /proc/PID/stat: %w", i+3, err)
		}
		p.ticks += n
	}
	return p, nil
}

// treeCPU is the CPU time, in seconds, of root and every process under it,
// including those that exited and were waited for by a process of the
// tree (in its cutime and cstime). Between two readings a process that
// exits moves its time from its own counters into its parent's, so the
// difference of two readings is the time the tree spent meanwhile.
func treeCPU(procs []procStat, root int) float64 {
	if root <= 0 {
		return 0
	}
	children := map[int][]procStat{}
	var total int64
	found := false
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p)
		if p.pid == root {
			total += p.ticks
			found = true
		}
	}
	if !found {
		return 0
	}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			total += c.ticks
			queue = append(queue, c.pid)
		}
	}
	return float64(total) / clockTicks
}

// loadAverage is the machine's 1, 5 and 15 minute load averages
// (/proc/loadavg), "?" when unreadable: with other work on a shared
// machine, a run's figures are read knowing it.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
