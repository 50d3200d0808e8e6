package doveadm

import (
	"encoding/json"
	"testing"
)

func TestServiceProcessInstance(t *testing.T) {
	s := NewServer(goldenConfig(), newFakeServices())
	rows := func(body string) []map[string]string {
		t.Helper()
		var out [][]json.RawMessage
		if err := json.Unmarshal([]byte(run(t, s, body)), &out); err != nil || len(out) != 1 {
			t.Fatalf("%s: bad response %v", body, err)
		}
		var rs []map[string]string
		if err := json.Unmarshal(out[0][1], &rs); err != nil {
			t.Fatalf("%s: %s", body, out[0][1])
		}
		return rs
	}
	all := rows(`[["serviceStatus",{},"t"]]`)
	if len(all) != len(directorServices) || all[0]["name"] != "managesieve-login" || len(all[0]) != 13 {
		t.Errorf("serviceStatus: %d rows, first %v", len(all), all[0])
	}
	if one := rows(`[["serviceStatus",{"service":["director"]},"t"]]`); len(one) != 1 || one[0]["process_count"] != "1" {
		t.Errorf("serviceStatus director: %v", one)
	}
	if got := run(t, s, `[["serviceStatus",{"service":["nosuch"]},"t"]]`); got != `[["error",{"type":"exitCode", "exitCode":68},"t"]]` {
		t.Errorf("unknown service: %s", got)
	}
	procs := rows(`[["processStatus",{},"t"]]`)
	if len(procs) == 0 || len(procs[0]) != 7 || procs[0]["pid"] == "" {
		t.Errorf("processStatus: %v", procs)
	}
	inst := rows(`[["instanceList",{},"t"]]`)
	if len(inst) != 1 || inst[0]["running"] != "yes" || inst[0]["name"] != "usher" {
		t.Errorf("instanceList: %v", inst)
	}
}
