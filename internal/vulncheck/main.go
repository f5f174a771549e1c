// Command vulncheck reads govulncheck's JSON output (-format json) on
// standard input and says what it found: the vulnerabilities whose code
// this module calls, split into those of the Go standard library (fixed by
// a newer Go toolchain) and those of required modules (fixed by upgrading
// the module). It exits 1 if the code calls a vulnerable module, and, with
// -stdlib=fail, a vulnerable standard library; 0 otherwise.
//
//	govulncheck -format json ./... | go run ./internal/vulncheck
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
)

// finding is the part of a govulncheck finding this command reads.
type finding struct {
	OSV          string `json:"osv"`
	FixedVersion string `json:"fixed_version"`
	Trace        []struct {
		Module   string `json:"module"`
		Version  string `json:"version"`
		Package  string `json:"package"`
		Function string `json:"function"`
	} `json:"trace"`
}

func main() {
	stdlib := flag.String("stdlib", "fail", "what a called standard library vulnerability does: fail or warn")
	flag.Parse()
	code, err := run(os.Stdin, os.Stdout, *stdlib == "fail")
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulncheck:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

// run reads the stream and reports; it returns the exit status.
func run(r io.Reader, w io.Writer, failStdlib bool) (int, error) {
	called := map[string]map[string]string{} // module → osv → "found → fixed"
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Finding *finding `json:"finding"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return 0, fmt.Errorf("read govulncheck output: %w", err)
		}
		f := msg.Finding
		// Only a trace down to a function means the code calls it.
		if f == nil || len(f.Trace) == 0 || f.Trace[0].Function == "" {
			continue
		}
		top := f.Trace[0]
		if called[top.Module] == nil {
			called[top.Module] = map[string]string{}
		}
		called[top.Module][f.OSV] = fmt.Sprintf("%s@%s, fixed in %s", top.Module, top.Version, f.FixedVersion)
	}
	modules := make([]string, 0, len(called))
	for m := range called {
		modules = append(modules, m)
	}
	slices.Sort(modules)
	code := 0
	for _, m := range modules {
		var ids []string
		for id := range called[m] {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			fmt.Fprintf(w, "  %s: %s (https://pkg.go.dev/vuln/%s)\n", id, called[m][id], id)
		}
		if m == "stdlib" {
			fmt.Fprintf(w, "The code calls %d vulnerable parts of the Go standard library: build with a Go toolchain at or above the fixed versions.\n", len(ids))
			if failStdlib {
				code = 1
			}
		} else {
			fmt.Fprintf(w, "The code calls %d vulnerabilities of %s: upgrade it (go get %s@latest; go mod tidy).\n", len(ids), m, m)
			code = 1
		}
	}
	if len(modules) == 0 {
		fmt.Fprintln(w, "No vulnerability in code this module calls.")
	}
	return code, nil
}
