package bolt

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// fill sets every exported field reachable from v to a non-zero value:
// pointers to new values, slices to one element.
func fill(t *testing.T, v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(t, v.Index(0))
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i))
			}
		}
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint8:
		v.SetUint(7)
	case reflect.Float64:
		v.SetFloat(1.5)
	default:
		t.Fatalf("fill: %s (%s) not handled: teach fill and cloneNode about it", v.Type(), v.Kind())
	}
}

// shared reports the path of the first pointer or slice that a and b share.
func shared(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		if !a.IsNil() && a.UnsafePointer() == b.UnsafePointer() {
			return path
		}
		if a.Kind() == reflect.Pointer && !a.IsNil() {
			return shared(a.Elem(), b.Elem(), path)
		}
		if a.Kind() == reflect.Slice {
			for i := range a.Len() {
				if p := shared(a.Index(i), b.Index(i), path+"[]"); p != "" {
					return p
				}
			}
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() {
				if p := shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
					return p
				}
			}
		}
	}
	return ""
}

// TestCloneNodeSharesNothing: a clone of a node with every field set is
// equal to it and shares no slice or pointed-to value with it, so that
// the decode cache never hands out what another caller may change. A
// field added to loaxa.Node that cloneNode does not copy fails it.
func TestCloneNodeSharesNothing(t *testing.T) {
	var n loaxa.Node
	fill(t, reflect.ValueOf(&n).Elem())
	c := cloneNode(&n)
	if !reflect.DeepEqual(&n, c) {
		t.Fatalf("clone differs:\n%+v\n%+v", n, *c)
	}
	if p := shared(reflect.ValueOf(n), reflect.ValueOf(*c), "Node"); p != "" {
		t.Errorf("the clone shares %s with the original", p)
	}
}

// TestDecodeNodeCache: the same bytes decode to equal nodes that callers
// may change without changing the next decoding; other bytes under the
// same key decode afresh.
func TestDecodeNodeCache(t *testing.T) {
	on := true
	n := &loaxa.Node{ID: "cache-n1", Area: "31", Credentials: loaxa.CredentialsActive, Status: loaxa.NodeStatus{
		State: loaxa.NodeOnline, Faults: []loaxa.Fault{{Kind: "mains"}}, Board: &protocol.Board{Mains: &on}, Keys: []string{"k1"}}}
	raw, err := json.Marshal(nodeRecord{n, []byte("hash"), "bh"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := decodeNode([]byte(n.ID), raw)
	if err != nil {
		t.Fatal(err)
	}
	a.Status.Faults[0].Kind = "changed"
	*a.Status.Board.Mains = false
	a.SecretHash[0] = 'X'
	a.Status.State = loaxa.NodeOffline
	b, err := decodeNode([]byte(n.ID), raw)
	if err != nil {
		t.Fatal(err)
	}
	if b == a || b.Status.Faults[0].Kind != "mains" || !*b.Status.Board.Mains || string(b.SecretHash) != "hash" || b.Status.State != loaxa.NodeOnline {
		t.Errorf("second decoding %+v shows the first caller's changes", b.Status)
	}
	n.Status.State = loaxa.NodeOffline
	raw2, err := json.Marshal(nodeRecord{n, []byte("hash"), "bh"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeNode([]byte(n.ID), raw2)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status.State != loaxa.NodeOffline {
		t.Errorf("new bytes decoded as state %q, want offline", c.Status.State)
	}
}
