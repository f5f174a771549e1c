package loaxa

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestAlarmKindsListsEveryKind: every Alarm… kind constant of health.go is
// in AlarmKinds, which GET /alarms?kind= checks against.
func TestAlarmKindsListsEveryKind(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "health.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			for i, name := range v.Names {
				if !strings.HasPrefix(name.Name, "Alarm") || i >= len(v.Values) {
					continue
				}
				lit, ok := v.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				kind, _ := strconv.Unquote(lit.Value)
				n++
				if !slices.Contains(AlarmKinds, kind) {
					t.Errorf("%s (%q) is not in AlarmKinds", name.Name, kind)
				}
			}
		}
	}
	if n != len(AlarmKinds) {
		t.Errorf("health.go has %d alarm kinds, AlarmKinds %d", n, len(AlarmKinds))
	}
}

// TestCountSaysOne: operators read "1 contents missing", "1 files
// damaged" and "1 nodes running"; a count of one takes the singular.
func TestCountSaysOne(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Count(0, "node", "nodes"), "0 nodes"},
		{Count(1, "node", "nodes"), "1 node"},
		{Count(2, "content file", "content files"), "2 content files"},
		{AlarmDetail(AlarmContentMissing, AlarmFacts{MissingContent: 1, MissingForS: 6 * 3600}), "1 content missing for 6h0m0s"},
		{AlarmDetail(AlarmStorageDamaged, AlarmFacts{DamagedFiles: 1}), "1 file damaged on the board's storage in 24 h"},
		{AlarmDetail(AlarmDesiredUndelivered, AlarmFacts{DesiredVersion: 7, Attempts: 1, Error: "timeout"}),
			"desired state 7 not accepted by the broker after 1 attempt: timeout"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}
