package bolt_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
)

// mustTree builds the tree used by several tests:
//
//	hp (province)
//	├── hp.an-duong (district)
//	│   ├── hp.an-duong.le-loi (commune)
//	│   │   └── hp.an-duong.le-loi.t1 (village)
//	│   └── hp.an-duong.an-hoa
//	└── hp.thuy-nguyen
//	hn (another root)
func mustTree(tb testing.TB, db *bolt.DB) {
	tb.Helper()
	for _, a := range [][2]string{
		{"hp", ""},
		{"hp.an-duong", "hp"},
		{"hp.an-duong.le-loi", "hp.an-duong"},
		{"hp.an-duong.le-loi.t1", "hp.an-duong.le-loi"},
		{"hp.an-duong.an-hoa", "hp.an-duong"},
		{"hp.thuy-nguyen", "hp"},
		{"hn", ""},
	} {
		mustArea(tb, db, a[0], a[1])
	}
}

func TestAreaService_CreateArea(t *testing.T) {
	db, clk := MustOpenDB(t)
	s := bolt.NewAreaService(db)
	ctx := context.Background()

	a := &loaxa.Area{ID: "hp", Name: "Hải Phòng", TimeZone: "Asia/Ho_Chi_Minh"}
	must(t, s.CreateArea(ctx, a))
	if !a.CreatedAt.Equal(clk.Now()) {
		t.Errorf("CreatedAt %v, want the clock's %v", a.CreatedAt, clk.Now())
	}
	got, err := s.FindAreaByID(ctx, "hp")
	must(t, err)
	if *got != *a {
		t.Errorf("stored %+v, want %+v", got, a)
	}

	tests := []struct {
		name string
		area loaxa.Area
		code string
		msg  string // a fragment the message must contain
	}{
		{"duplicate id", loaxa.Area{ID: "hp", Name: "again"}, loaxa.EConflict, `"hp" already exists`},
		{"missing parent", loaxa.Area{ID: "x", Name: "x", Parent: "nowhere"}, loaxa.EInvalid, `"nowhere"`},
		{"bad id", loaxa.Area{ID: "Hai Phong", Name: "x"}, loaxa.EInvalid, "lower-case"},
		{"empty id", loaxa.Area{Name: "x"}, loaxa.EInvalid, "empty"},
		{"no name", loaxa.Area{ID: "y", Name: "  "}, loaxa.EInvalid, "no name"},
		{"bad time zone", loaxa.Area{ID: "z", Name: "z", TimeZone: "Mars/Olympus"}, loaxa.EInvalid, "Mars/Olympus"},
		{"machine time zone", loaxa.Area{ID: "z", Name: "z", TimeZone: "Local"}, loaxa.EInvalid, "Local"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.area
			err := s.CreateArea(ctx, &a)
			wantCode(t, err, tt.code)
			if msg := loaxa.ErrorMessage(err); !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q does not mention %q", msg, tt.msg)
			}
		})
	}
	all, err := s.FindAreas(ctx, loaxa.AreaFilter{})
	must(t, err)
	if len(all) != 1 {
		t.Errorf("%d areas stored after the failed creates, want 1", len(all))
	}
}

func TestAreaService_FindAreaByID_NotFound(t *testing.T) {
	db, _ := MustOpenDB(t)
	_, err := bolt.NewAreaService(db).FindAreaByID(context.Background(), "nowhere")
	wantCode(t, err, loaxa.ENotFound)
}

func TestAreaService_AreaChain(t *testing.T) {
	db, _ := MustOpenDB(t)
	mustTree(t, db)
	s := bolt.NewAreaService(db)
	tests := []struct {
		id   string
		want []string
		code string
	}{
		{"hp", []string{"hp"}, ""},
		{"hp.an-duong.le-loi.t1", []string{"hp.an-duong.le-loi.t1", "hp.an-duong.le-loi", "hp.an-duong", "hp"}, ""},
		{"hp.thuy-nguyen", []string{"hp.thuy-nguyen", "hp"}, ""},
		{"nowhere", nil, loaxa.ENotFound},
		{"", nil, loaxa.ENotFound},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got, err := s.AreaChain(context.Background(), tt.id)
			wantCode(t, err, tt.code)
			if !slices.Equal(got, tt.want) {
				t.Errorf("chain %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAreaService_FindAreas_Within(t *testing.T) {
	db, _ := MustOpenDB(t)
	mustTree(t, db)
	s := bolt.NewAreaService(db)
	tests := []struct {
		within string
		want   []string
		code   string
	}{
		{"", []string{"hn", "hp", "hp.an-duong", "hp.an-duong.an-hoa", "hp.an-duong.le-loi", "hp.an-duong.le-loi.t1", "hp.thuy-nguyen"}, ""},
		{"hp.an-duong", []string{"hp.an-duong", "hp.an-duong.an-hoa", "hp.an-duong.le-loi", "hp.an-duong.le-loi.t1"}, ""},
		{"hp.an-duong.le-loi.t1", []string{"hp.an-duong.le-loi.t1"}, ""},
		{"hn", []string{"hn"}, ""},
		{"nowhere", nil, loaxa.ENotFound},
	}
	for _, tt := range tests {
		t.Run("within "+tt.within, func(t *testing.T) {
			areas, err := s.FindAreas(context.Background(), loaxa.AreaFilter{Within: tt.within})
			wantCode(t, err, tt.code)
			var got []string
			for _, a := range areas {
				got = append(got, a.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("areas %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAreaService_DepthLimit(t *testing.T) {
	db, _ := MustOpenDB(t)
	s := bolt.NewAreaService(db)
	parent := ""
	var err error
	for i := 0; err == nil; i++ {
		id := "a" + strings.Repeat("x", i)
		err = s.CreateArea(context.Background(), &loaxa.Area{ID: id, Name: id, Parent: parent})
		parent = id
		if i > 100 {
			t.Fatal("no depth limit")
		}
	}
	wantCode(t, err, loaxa.EInvalid)
}

// TestAreaParents: the tree's shape, every area with its parent ("" for a
// root), as the alarm stream reads it instead of every area.
func TestAreaParents(t *testing.T) {
	db, _ := MustOpenDB(t)
	mustTree(t, db)
	got, err := bolt.NewAreaService(db).AreaParents(context.Background())
	must(t, err)
	want := map[string]string{
		"hp": "", "hp.an-duong": "hp", "hp.an-duong.le-loi": "hp.an-duong", "hp.an-duong.le-loi.t1": "hp.an-duong.le-loi",
		"hp.an-duong.an-hoa": "hp.an-duong", "hp.thuy-nguyen": "hp", "hn": "",
	}
	if !maps.Equal(got, want) {
		t.Errorf("AreaParents = %v, want %v", got, want)
	}
}
