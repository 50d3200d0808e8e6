package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

const apiPassword = "benchdoveadm"

func newClient() *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: 64,
			DisableCompression:  true,
		},
	}
}

func body(cmd string) []byte {
	b, _ := json.Marshal([]any{[]any{cmd, map[string]any{}, "b"}})
	return b
}

// call posts one command and returns the response body; any non-200 status
// or a doveadm error element is an error.
func call(c *http.Client, url string, req []byte) ([]byte, error) {
	r, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(req))
	r.SetBasicAuth("doveadm", apiPassword)
	r.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, data)
	}
	if bytes.HasPrefix(data, []byte(`[["error"`)) {
		return nil, fmt.Errorf("doveadm error: %.200s", data)
	}
	return data, nil
}

// rows counts the rows of a doveadmResponse; who with several users may
// spread them over several elements, as Dovecot 2.3 does.
func rows(data []byte) (int, error) {
	var resp [][]json.RawMessage
	if err := json.Unmarshal(data, &resp); err != nil || len(resp) != 1 || len(resp[0]) < 3 {
		return 0, fmt.Errorf("bad response %.200s", data)
	}
	n := 0
	for _, el := range resp[0][1 : len(resp[0])-1] {
		var rs []json.RawMessage
		if err := json.Unmarshal(el, &rs); err != nil {
			return 0, fmt.Errorf("bad element %.200s", el)
		}
		n += len(rs)
	}
	return n, nil
}

// runRequests is the measured loop: b.N requests spread over GOMAXPROCS*4
// goroutines with keep-alive connections, reported as req/s.
func runRequests(b *testing.B, c *http.Client, url string, req []byte) {
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := call(c, url, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func mustListen(b *testing.B, ip netip.Addr) net.Listener {
	b.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		b.Fatal(err)
	}
	return l
}
