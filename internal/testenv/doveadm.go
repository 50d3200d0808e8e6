package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// WhoRow is one aggregated row of doveadm who: a user's connections for one service.
type WhoRow struct {
	Username    string
	Service     string
	Connections int
	PIDs        []int
	IPs         []netip.Addr
}

// Who asks the backend's doveadm HTTP API who is connected (anvil's view, so with a trusted
// proxy in front it shows the forwarded client IPs). Row order is unspecified.
func (b *Backend) Who(t testing.TB) []WhoRow {
	t.Helper()
	elems, err := b.Doveadm("who", map[string]any{})
	if err != nil {
		t.Fatalf("testenv: %s who: %v", b.Name, err)
	}
	rows, err := parseWho(elems)
	if err != nil {
		t.Fatalf("testenv: %s who: %v", b.Name, err)
	}
	return rows
}

// DoveadmError is a command failure reported by the doveadm HTTP API.
type DoveadmError struct {
	Type     string `json:"type"`
	ExitCode int    `json:"exitCode"`
}

func (e *DoveadmError) Error() string {
	return fmt.Sprintf("doveadm %s (exit code %d)", e.Type, e.ExitCode)
}

// Doveadm runs one command over the backend's doveadm HTTP API (Basic doveadm:<password>) and
// returns the elements of its doveadmResponse between the name and the tag: normally one JSON
// array of rows, but Dovecot 2.3's who with several users closes that array after the first
// user and emits the other rows as further elements.
func (b *Backend) Doveadm(command string, params map[string]any) ([]json.RawMessage, error) {
	return doveadmPost("http://"+b.HostPort(b.HTTPPort), b.DoveadmPassword, command, params)
}

// doveadmPost sends one command (nil params are {}) to the doveadm HTTP API at baseURL and
// returns the response's elements, or its error element as a *DoveadmError.
func doveadmPost(baseURL, password, command string, params map[string]any) ([]json.RawMessage, error) {
	if params == nil {
		params = map[string]any{}
	}
	body, err := json.Marshal([]any{[]any{command, params, "testenv"}})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, baseURL+"/doveadm/v1", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth("doveadm", password)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s: %s", resp.Status, data)
	}
	return parseResponse(data)
}

// parseResponse takes a one-command response body [[kind, elements..., tag]].
func parseResponse(data []byte) ([]json.RawMessage, error) {
	var outer [][]json.RawMessage
	if err := json.Unmarshal(data, &outer); err != nil {
		return nil, fmt.Errorf("response %q: %w", data, err)
	}
	if len(outer) != 1 || len(outer[0]) < 2 {
		return nil, fmt.Errorf("response %q: want one [kind, ..., tag] element", data)
	}
	resp := outer[0]
	var kind string
	if err := json.Unmarshal(resp[0], &kind); err != nil {
		return nil, fmt.Errorf("response %q: %w", data, err)
	}
	switch kind {
	case "doveadmResponse":
		return resp[1 : len(resp)-1], nil
	case "error":
		e := &DoveadmError{}
		if err := json.Unmarshal(resp[1], e); err != nil {
			return nil, fmt.Errorf("response %q: %w", data, err)
		}
		return nil, e
	}
	return nil, fmt.Errorf("response %q: unknown kind %q", data, kind)
}

// parseWho turns who's response elements (arrays of row objects or bare row objects) into rows.
func parseWho(elems []json.RawMessage) ([]WhoRow, error) {
	var raw []map[string]string
	for _, e := range elems {
		t := bytes.TrimSpace(e)
		if len(t) > 0 && t[0] == '[' {
			var rows []map[string]string
			if err := json.Unmarshal(t, &rows); err != nil {
				return nil, err
			}
			raw = append(raw, rows...)
			continue
		}
		var row map[string]string
		if err := json.Unmarshal(t, &row); err != nil {
			return nil, err
		}
		raw = append(raw, row)
	}
	out := make([]WhoRow, 0, len(raw))
	for _, r := range raw {
		row := WhoRow{Username: r["username"], Service: r["service"]}
		var err error
		if row.Connections, err = strconv.Atoi(r["connections"]); err != nil {
			return nil, fmt.Errorf("who row %v: connections: %w", r, err)
		}
		for _, f := range parenList(r["pids"]) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("who row %v: pids: %w", r, err)
			}
			row.PIDs = append(row.PIDs, pid)
		}
		for _, f := range parenList(r["ips"]) {
			ip, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("who row %v: ips: %w", r, err)
			}
			row.IPs = append(row.IPs, ip)
		}
		out = append(out, row)
	}
	return out, nil
}

// parenList splits who's "(a b c)" list syntax.
func parenList(s string) []string {
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "("), ")")
	return strings.Fields(s)
}
