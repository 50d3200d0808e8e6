package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/usher-mail/usher/internal/cli"
)

// followEvery is how often a running drain or rebalance is asked for its
// progress.
var followEvery = time.Second

// followLimit bounds how long the CLI follows a job; the job itself goes on
// in usher when the CLI stops following it.
const followLimit = 24 * time.Hour

func progressHeaders() []cli.Header {
	return simple("job", "host", "state", "users-left", "sessions-left", "in-flight",
		"peak-in-flight", "moved", "failed", "total", "max-parallel", "error")
}

// follow prints the progress of the job a drain or rebalance started (its
// first row), polling usherDirectorJobs on the same director until the job
// ends. With -f the rows are printed in that format instead of sentences
// (json: only the final row).
func follow(ctx context.Context, c *cli.Client, g globals, v *verb, p map[string]any, first cli.Result,
	stdout, stderr io.Writer) int {
	hdrs := progressHeaders()
	row := func(res cli.Result) (map[string]string, bool) {
		out := cli.Build(hdrs, res.Rows)
		if len(out.Rows) != 1 {
			return nil, false
		}
		m := map[string]string{}
		for i, h := range hdrs {
			m[h.Key] = out.Rows[0][i]
		}
		return m, true
	}
	cur, ok := row(first)
	if !ok {
		fmt.Fprintf(stderr, "Error: %s: unexpected answer\n", v.name())
		return 76
	}
	var jobsParams []cli.Param
	if sp, ok := p["socketPath"]; ok {
		jobsParams = append(jobsParams, cli.Param{Name: "socketPath", Value: sp})
	}
	deadline := time.Now().Add(followLimit)
	last := ""
	for {
		line := progressSentence(cur)
		ended := cur["state"] != "running"
		if line != last {
			if err := printProgress(stdout, g, hdrs, cur, line, ended); err != nil {
				return exTempFail
			}
		}
		last = line
		switch cur["state"] {
		case "done":
			return 0
		case "failed":
			return exTempFail
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(stderr, "Error: stopped following; the job goes on in usher (see usher director jobs)")
			return exTempFail
		}
		select {
		case <-ctx.Done():
			return exTempFail
		case <-time.After(followEvery):
		}
		res, err := c.Run(ctx, "usherDirectorJobs", jobsParams)
		if err != nil || res.Error != "" {
			fmt.Fprintf(stderr, "Error: %s: reading progress: %v%s\n", c.URL, err, res.Error)
			return exTempFail
		}
		if !updateProgress(cur, hdrs, res) {
			fmt.Fprintln(stderr, "Error: the job is no longer listed (usher restarted?)")
			return exTempFail
		}
	}
}

// printProgress prints one progress row: a sentence, or a row in the -f format (json prints
// one document, so only the final row).
func printProgress(stdout io.Writer, g globals, hdrs []cli.Header, cur map[string]string, line string, ended bool) error {
	switch {
	case g.format == "":
		_, err := fmt.Fprintln(stdout, line)
		return err
	case g.format == cli.JSON && !ended:
		return nil
	}
	out := &cli.Output{Headers: hdrs, Rows: [][]string{make([]string, len(hdrs))}}
	for i, h := range hdrs {
		out.Rows[0][i] = cur[h.Key]
	}
	return cli.Write(stdout, out, g.format, termColumns(stdout), "")
}

// updateProgress copies the job's row from a usherDirectorJobs answer into cur, and reports
// whether the job was still listed.
func updateProgress(cur map[string]string, hdrs []cli.Header, res cli.Result) bool {
	found := false
	for _, r := range cli.Build(hdrs, res.Rows).Rows {
		if r[0] == cur["job"] && r[1] == cur["host"] {
			for i, h := range hdrs {
				cur[h.Key] = r[i]
			}
			found = true
		}
	}
	return found
}

// progressSentence is one line of progress, e.g.
// "drain 127.0.0.11: running, 120 users left, 30 sessions left, 100 moving, 180 moved".
func progressSentence(m map[string]string) string {
	what := m["job"]
	if m["host"] != "" {
		what += " " + m["host"]
	}
	s := what + ": " + m["state"]
	if m["host"] != "" {
		s += ", " + m["users-left"] + " users left, " + m["sessions-left"] + " sessions left"
	} else {
		s += ", " + m["total"] + " users to move"
	}
	s += ", " + m["in-flight"] + " moving, " + m["moved"] + " moved"
	if n, _ := strconv.Atoi(m["failed"]); n > 0 {
		s += ", " + m["failed"] + " failed"
	}
	if m["error"] != "" {
		s += ": " + m["error"]
	}
	return s
}
