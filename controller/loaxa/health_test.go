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
