package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cpuTicks is the CPU time (user plus system, in clock ticks) of this
// process and every process it started, by part: the emulators, the
// functions server, the connectors, and this process (the sensors). It
// reads /proc, so it is empty where there is none.
func cpuTicks() map[string]int64 {
	type proc struct {
		ppid  int
		ticks int64
		part  string
	}
	procs := map[int]proc{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		// The command name may hold spaces and parentheses; the fields
		// after it are fixed.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		cmd, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		procs[pid] = proc{ppid: ppid, ticks: utime + stime, part: part(string(cmd))}
	}
	self := os.Getpid()
	out := map[string]int64{}
	for pid, p := range procs {
		for anc := pid; anc > 1; anc = procs[anc].ppid {
			if anc == self {
				name := p.part
				if pid == self {
					name = "sensors and load tool"
				}
				out[name] += p.ticks
				break
			}
			if _, ok := procs[anc]; !ok {
				break
			}
		}
	}
	return out
}

func part(cmdline string) string {
	switch {
	case strings.Contains(cmdline, "cloud-firestore-emulator"):
		return "Firestore emulator"
	case strings.Contains(cmdline, "pubsub-emulator"):
		return "Pub/Sub emulator"
	case strings.Contains(cmdline, "localserver"):
		return "functions server"
	case strings.Contains(cmdline, "/connector"):
		return "connectors"
	default:
		return "other"
	}
}
