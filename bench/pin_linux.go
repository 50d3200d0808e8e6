package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"
)

// cpuPlan splits the machine: the contender (every process of it) on its own CPUs, the load
// generator and the backends on the rest, so that what a contender achieves is its own
// capacity, not what the load generator happens to leave it.
type cpuPlan struct {
	all, contender, harness unix.CPUSet
	desc                    string
}

// newCPUPlan gives the contender the first half of the CPUs this process may use (at least
// one) and the harness the rest. It fails with fewer than two CPUs.
func newCPUPlan() (*cpuPlan, error) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		return nil, err
	}
	var cpus []int
	for i := 0; i < 1024; i++ {
		if all.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) < 2 {
		return nil, fmt.Errorf("pinning needs two CPUs, this process may use %d", len(cpus))
	}
	p := &cpuPlan{all: all}
	half := len(cpus) / 2
	for i, c := range cpus {
		if i < half {
			p.contender.Set(c)
		} else {
			p.harness.Set(c)
		}
	}
	p.desc = fmt.Sprintf("contender on CPU %v, load generator and backends on CPU %v", cpus[:half], cpus[half:])
	return p, nil
}

// pinSelf moves every thread of this process onto the harness CPUs; threads started later
// inherit the mask from the thread that creates them. unpinSelf undoes it.
func (p *cpuPlan) pinSelf() error { return setAllThreads(&p.harness) }

func (p *cpuPlan) unpinSelf() error { return setAllThreads(&p.all) }

func setAllThreads(set *unix.CPUSet) error {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil {
			return fmt.Errorf("pinning thread %d: %w", tid, err)
		}
	}
	return nil
}

// wrap makes cmd start on set: the child and every process and thread it starts inherit it.
func wrap(cmd *exec.Cmd, set unix.CPUSet) *exec.Cmd {
	list := ""
	for i := 0; i < 1024; i++ {
		if set.IsSet(i) {
			if list != "" {
				list += ","
			}
			list += strconv.Itoa(i)
		}
	}
	w := exec.Command("taskset", append([]string{"-c", list, cmd.Path}, cmd.Args[1:]...)...)
	w.Env, w.Dir = cmd.Env, cmd.Dir
	return w
}
