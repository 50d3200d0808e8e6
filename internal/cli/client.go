package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/usher-mail/usher/internal/jsonesc"
)

// Param is one named command parameter. Value is a string, bool, int64 or []string.
type Param struct {
	Name  string
	Value any
}

// Client talks to a doveadm HTTP API (usher's or Dovecot's).
type Client struct {
	// URL is the API base, e.g. http://127.0.0.1:8080; /doveadm/v1 is appended.
	URL      string
	Password string // doveadm_password, sent as Basic doveadm:<password>
	APIKey   string // doveadm_api_key, sent as X-Dovecot-API; preferred over Password
	HTTP     *http.Client
}

// HTTPError is a response other than 200: authentication or request grammar failures.
type HTTPError struct {
	Status int
	Text   string
}

func (e *HTTPError) Error() string {
	if e.Text == "" {
		return "HTTP " + strconv.Itoa(e.Status)
	}
	return "HTTP " + strconv.Itoa(e.Status) + ": " + e.Text
}

// RequestBody encodes one command as a doveadm API request body, parameters in order.
func RequestBody(cmd string, params []Param, tag string) ([]byte, error) {
	var b strings.Builder
	b.WriteString(`[["` + jsonesc.Escape(cmd) + `",{`)
	for i, p := range params {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + jsonesc.Escape(p.Name) + `":`)
		switch v := p.Value.(type) {
		case string:
			b.WriteString(`"` + jsonesc.Escape(v) + `"`)
		case bool:
			b.WriteString(strconv.FormatBool(v))
		case int64:
			b.WriteString(strconv.FormatInt(v, 10))
		case []string:
			b.WriteByte('[')
			for j, s := range v {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(`"` + jsonesc.Escape(s) + `"`)
			}
			b.WriteByte(']')
		default:
			return nil, fmt.Errorf("parameter %s: unsupported type %T", p.Name, p.Value)
		}
	}
	b.WriteString(`},"` + jsonesc.Escape(tag) + `"]]`)
	return []byte(b.String()), nil
}

// Run executes one command and returns its result element.
func (c *Client) Run(ctx context.Context, cmd string, params []Param) (Result, error) {
	body, err := RequestBody(cmd, params, "usher")
	if err != nil {
		return Result{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		strings.TrimSuffix(c.URL, "/")+"/doveadm/v1", bytes.NewReader(body))
	if err != nil {
		return Result{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	switch {
	case c.APIKey != "":
		req.Header.Set("Authorization", "X-Dovecot-API "+base64.StdEncoding.EncodeToString([]byte(c.APIKey)))
	case c.Password != "":
		req.SetBasicAuth("doveadm", c.Password)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Result{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return Result{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return Result{}, &HTTPError{Status: resp.StatusCode, Text: strings.TrimSpace(string(data))}
	}
	results, err := ParseResponse(data)
	if err != nil {
		return Result{}, err
	}
	if len(results) != 1 {
		return Result{}, fmt.Errorf("invalid response: %d elements for one command", len(results))
	}
	return results[0], nil
}
