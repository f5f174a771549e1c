package http_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
)

// FuzzAPI sends arbitrary query strings and bodies to every route of the
// API as the whole-tree admin. Whatever arrives, the answer is a success
// or an error in the JSON error shape with a known code, never an internal
// error or a panic: bad input gets a clear answer.
func FuzzAPI(f *testing.F) {
	e := newEnv(f)
	e.tree()
	routes := e.srv.Routes()
	seeds := map[string][]string{
		"POST /api/v1/auth/token":    {`{"username":"admin","password":"x"}`, `{"username":"` + strings.Repeat("a", 100) + `"}`},
		"POST /api/v1/users":         {`{"username":"u1","password":"mat-khau-dai","role":"viewer","area":"31"}`, `{"role":7}`},
		"POST /api/v1/areas":         {`{"id":"thon-1","name":"Thôn 1","parent":"12346","time_zone":"Asia/Ho_Chi_Minh"}`, `{"id":"..","name":"\u0000"}`},
		"POST /api/v1/nodes":         {`{"id":"n1","name":"Loa","area":"12346","lat":1e400}`, `{"id":"n2","name":"Loa","area":"12346","credentials":"code"}`},
		"POST /api/v1/nodes/batch":   {`{"credentials":"code","nodes":[{"id":"b1","name":"x","area":"31"},{"id":"b1","name":"x","area":"31"}]}`, `{"nodes":[]}`},
		"POST /api/v1/enrol":         {`{"code":"7KQ2M-XH9DP-03RTW-VN5CE"}`, `{"code":"ıİ-ſ"}`},
		"POST /api/v1/announcements": {`{"content_id":"00","targets":{"areas":["31"]},"start":"2026-03-02T06:00:00+07:00","repeat":-1}`, `{"rrule":"FREQ=DAILY"}`},
		"POST /api/v1/keys/activate": {`{"force":false}`, `[]`},
		"POST /api/v1/emergency":     {`{"content_id":"00","intro_content_id":"` + strings.Repeat("ab", 32) + `","targets":["31"],"drill":true}`, `{"text":"Bão","intro_content_id":7}`},
		"GET /api/v1/events":         {""},
	}
	for i, rt := range routes {
		f.Add(uint8(i), "", []byte(nil))
		for _, s := range seeds[rt.Method+" "+rt.Path] {
			f.Add(uint8(i), "limit=5&from=2026-01-01T00:00:00Z", []byte(s))
		}
	}
	codes := map[string]bool{"method_not_allowed": true}
	for _, c := range []string{loaxa.EConflict, loaxa.EInvalid, loaxa.ENotFound, loaxa.EUnauthorized, loaxa.EForbidden, loaxa.ETooLarge, loaxa.EUnsupported, loaxa.ETooMany} {
		codes[c] = true
	}
	f.Fuzz(func(t *testing.T, route uint8, query string, body []byte) {
		rt := routes[int(route)%len(routes)]
		path := strings.NewReplacer("{id}", "n-a", "{username}", "admin").Replace(rt.Path)
		values, err := url.ParseQuery(query)
		if err != nil {
			return // not a query a client could send
		}
		if strings.HasSuffix(rt.Path, "/stream") && values.Get("max") == "" {
			values.Set("max", "10ms") // a stream otherwise lasts as long as the client
		}
		req, err := http.NewRequest(rt.Method, e.ts.URL+path+"?"+values.Encode(), bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		token := e.admin
		if strings.HasSuffix(path, "/logout") || strings.HasSuffix(path, "/sessions") {
			// These end the session they use.
			if token, err = e.stores.users.CreateToken(t.Context(), "admin", e.clock.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", rt.Method, path, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 300 {
			return
		}
		var answer struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(raw, &answer); err != nil || !codes[answer.Error.Code] || answer.Error.Message == "" {
			t.Fatalf("%s %s?%q with %q: %d %s", rt.Method, path, query, body, resp.StatusCode, raw)
		}
	})
}
