//go:build !linux

package main

import (
	"errors"
	"os/exec"
)

// cpuPlan is Linux-only (sched_setaffinity, taskset); -pin fails elsewhere.
type cpuPlan struct{ contender, harness cpuSet }

type cpuSet struct{}

func (cpuSet) Count() int { return 0 }

func newCPUPlan() (*cpuPlan, error)          { return nil, errors.New("-pin is supported on Linux only") }
func (p *cpuPlan) pinSelf() error            { return nil }
func (p *cpuPlan) unpinSelf() error          { return nil }
func wrap(cmd *exec.Cmd, _ cpuSet) *exec.Cmd { return cmd }
