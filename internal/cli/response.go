package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Field is one key and value of a response row. Raw is set when the value was a JSON
// number (stats dump) rather than a string.
type Field struct {
	Key, Value string
	Raw        bool
}

// Result is one element of a doveadm API response: rows on success, or an error type
// (exitCode, unknownMethod, invalidRequest, unAuthorized, internalError) and its exit code.
type Result struct {
	Rows     [][]Field
	Error    string
	ExitCode int
	Tag      string
}

// ParseResponse decodes a POST /doveadm/v1 response body, keeping the order of each row's
// keys, which json.Unmarshal into maps would lose.
func ParseResponse(body []byte) ([]Result, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := expectDelim(d, '['); err != nil {
		return nil, err
	}
	var out []Result
	for d.More() {
		r, err := parseElement(d)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := expectDelim(d, ']'); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the response")
	}
	return out, nil
}

func expectDelim(d *json.Decoder, want json.Delim) error {
	t, err := d.Token()
	if err != nil {
		return fmt.Errorf("invalid response: %w", err)
	}
	if t != want {
		return fmt.Errorf("invalid response: expected %q, got %v", want, t)
	}
	return nil
}

func parseElement(d *json.Decoder) (Result, error) {
	var r Result
	if err := expectDelim(d, '['); err != nil {
		return r, err
	}
	t, err := d.Token()
	if err != nil {
		return r, err
	}
	kind, _ := t.(string)
	switch kind {
	case "doveadmResponse":
		if r.Rows, err = parseRows(d); err != nil {
			return r, err
		}
	case "error":
		var e struct {
			Type     string `json:"type"`
			ExitCode int    `json:"exitCode"`
		}
		if err := d.Decode(&e); err != nil {
			return r, fmt.Errorf("invalid error element: %w", err)
		}
		r.Error, r.ExitCode = e.Type, e.ExitCode
	default:
		return r, fmt.Errorf("invalid response element %v", t)
	}
	if d.More() {
		if err := d.Decode(&r.Tag); err != nil {
			return r, fmt.Errorf("invalid tag: %w", err)
		}
	}
	return r, expectDelim(d, ']')
}

func parseRows(d *json.Decoder) ([][]Field, error) {
	if err := expectDelim(d, '['); err != nil {
		return nil, err
	}
	rows := [][]Field{}
	for d.More() {
		if err := expectDelim(d, '{'); err != nil {
			return nil, err
		}
		var row []Field
		for d.More() {
			t, err := d.Token()
			if err != nil {
				return nil, err
			}
			key, ok := t.(string)
			if !ok {
				return nil, fmt.Errorf("invalid key %v", t)
			}
			if t, err = d.Token(); err != nil {
				return nil, err
			}
			f := Field{Key: key}
			switch v := t.(type) {
			case string:
				f.Value = v
			case json.Number:
				f.Value, f.Raw = v.String(), true
			case bool:
				f.Value = strconv.FormatBool(v)
			case nil:
			default:
				return nil, fmt.Errorf("invalid value for %q", key)
			}
			row = append(row, f)
		}
		if err := expectDelim(d, '}'); err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	return rows, expectDelim(d, ']')
}

// Build lines rows up under hdrs. Keys a row has that hdrs lacks become extra columns
// titled by their key, so nothing the server sends is dropped.
func Build(hdrs []Header, rows [][]Field) *Output {
	out := &Output{Headers: append([]Header(nil), hdrs...)}
	index := map[string]int{}
	for i, h := range out.Headers {
		index[h.Key] = i
	}
	for _, row := range rows {
		for _, f := range row {
			if _, ok := index[f.Key]; !ok {
				index[f.Key] = len(out.Headers)
				h := Header{Key: f.Key, Title: f.Key}
				if f.Raw {
					h.Flags |= Number
				}
				out.Headers = append(out.Headers, h)
			}
		}
	}
	for _, row := range rows {
		vals := make([]string, len(out.Headers))
		for _, f := range row {
			vals[index[f.Key]] = f.Value
		}
		out.Rows = append(out.Rows, vals)
	}
	return out
}
