package loaxa

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// roleTable renders grants as the Markdown table the docs show.
func roleTable() string {
	var b strings.Builder
	b.WriteString("| action |")
	for _, r := range Roles {
		b.WriteString(" " + string(r) + " |")
	}
	b.WriteString("\n| --- |")
	for range Roles {
		b.WriteString(" :-: |")
	}
	b.WriteString("\n")
	for _, a := range Actions {
		b.WriteString("| `" + string(a) + "` |")
		for _, r := range Roles {
			if slices.Contains(grants[r], a) {
				b.WriteString(" ✓ |")
			} else {
				b.WriteString(" |")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// The docs show the role table between marker comments; this keeps them
// equal to grants, the table that is enforced. Run with
// LOAXA_UPDATE_DOCS=1 to rewrite them.
func TestRoleTableInDocs(t *testing.T) {
	const begin, end = "<!-- role-table:begin (generated from controller/loaxa/auth.go by TestRoleTableInDocs) -->\n", "<!-- role-table:end -->"
	want := roleTable()
	for _, doc := range []string{"security.md", "api.md"} {
		path := filepath.Join("..", "..", "docs", doc)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		text := string(raw)
		i, j := strings.Index(text, begin), strings.Index(text, end)
		if i < 0 || j < i {
			t.Errorf("%s: no role table between %q and %q", path, strings.TrimSpace(begin), end)
			continue
		}
		got := text[i+len(begin) : j]
		if got == want {
			continue
		}
		if os.Getenv("LOAXA_UPDATE_DOCS") != "" {
			if err := os.WriteFile(path, []byte(text[:i+len(begin)]+want+text[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s: the role table differs from grants in auth.go; run LOAXA_UPDATE_DOCS=1 go test ./controller/loaxa/ to rewrite it.\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// Every role has a grants row, every granted action is listed in Actions,
// and every action is granted to someone.
func TestGrantsComplete(t *testing.T) {
	granted := map[Action]bool{}
	for _, r := range Roles {
		if !r.Valid() {
			t.Errorf("role %q is not Valid", r)
		}
		if _, ok := grants[r]; !ok {
			t.Errorf("role %q has no row in grants", r)
		}
		for _, a := range grants[r] {
			if !slices.Contains(Actions, a) {
				t.Errorf("role %q grants %q, which is not in Actions", r, a)
			}
			granted[a] = true
		}
	}
	for _, a := range Actions {
		if !granted[a] {
			t.Errorf("action %q is granted to no role", a)
		}
	}
	if len(grants) != len(Roles) {
		t.Errorf("grants has %d roles, Roles %d", len(grants), len(Roles))
	}
}

// TestRefusedRoleSaysWhatAndWho: a technician sending an emergency read
// `Role "technician" may not emergency.` (seen walking docs/emergency.md),
// which says neither what the refused right covers nor who has it. The
// refusal keeps its opening and says both, from the role table, for every
// action a role lacks.
func TestRefusedRoleSaysWhatAndWho(t *testing.T) {
	tech := &User{Username: "kt", Role: RoleTechnician, Area: "318"}
	err := Authorize(t.Context(), nil, tech, ActionEmergency, "12346")
	if ErrorCode(err) != EForbidden {
		t.Fatalf("technician sending an emergency: %v, want forbidden", err)
	}
	msg := ErrorMessage(err)
	for _, want := range []string{`Role "technician" may not emergency`, "send, stop or approve emergency alerts", "admin, province, district, commune"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal %q does not say %q", msg, want)
		}
	}
	for _, a := range Actions {
		if actionWords[a] == "" {
			t.Errorf("action %s: a refusal would not say what it covers (actionWords)", a)
		}
	}
	for _, r := range Roles {
		u := &User{Username: "u", Role: r}
		for _, a := range Actions {
			if u.May(a) {
				continue
			}
			msg := ErrorMessage(Authorize(t.Context(), nil, u, a, ""))
			if !strings.HasPrefix(msg, `Role "`+string(r)+`" may not `+string(a)+" (") || !strings.Contains(msg, "the roles that may:") {
				t.Errorf("role %s, action %s: refusal %q does not say what the action covers and who may", r, a, msg)
			}
		}
	}
}
