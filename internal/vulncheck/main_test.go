package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	const (
		config  = `{"config":{"scanner_name":"govulncheck"}}`
		pkgOnly = `{"finding":{"osv":"GO-1","fixed_version":"v1.2.0","trace":[{"module":"example.com/m","version":"v1.0.0","package":"example.com/m/p"}]}}`
		modCall = `{"finding":{"osv":"GO-2","fixed_version":"v1.2.0","trace":[{"module":"example.com/m","version":"v1.0.0","package":"example.com/m/p","function":"F"},{"module":"loaxa.vn"}]}}`
		stdCall = `{"finding":{"osv":"GO-3","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"Get"}]}}`
	)
	tests := []struct {
		name       string
		in         string
		failStdlib bool
		code       int
		out        string
	}{
		{"nothing called", config + pkgOnly, true, 0, "No vulnerability in code this module calls."},
		{"a module is called", config + modCall + modCall, false, 1, "calls 1 vulnerabilities of example.com/m: upgrade it"},
		{"stdlib fails", stdCall, true, 1, "GO-3: stdlib@v1.26.8, fixed in v1.26.9"},
		{"stdlib warns", stdCall, false, 0, "Go standard library"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			code, err := run(strings.NewReader(tt.in), &out, tt.failStdlib)
			if err != nil || code != tt.code || !strings.Contains(out.String(), tt.out) {
				t.Errorf("code %d, err %v, out %q; want %d and %q", code, err, out.String(), tt.code, tt.out)
			}
		})
	}
	if _, err := run(strings.NewReader("{broken"), &bytes.Buffer{}, true); err == nil {
		t.Error("broken input accepted")
	}
}
