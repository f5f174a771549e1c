// Package web is the browser console for officers and technicians: plain
// HTML, CSS and ES modules embedded in the controller binary and served
// at /. It has no build step and loads nothing from the internet; every
// action goes through the public API under /api/v1 with the session
// cookie and the CSRF token (docs/web.md).
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy allows only the controller's own scripts, styles,
// images and audio: no inline script, no third party, no framing.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

// asset is one embedded file, ready to serve plain or gzipped.
type asset struct {
	body, gz []byte
	typ      string
	etag     string
}

// Options are how the controller serves the console.
type Options struct {
	// Refresh multiplies every period a screen waits before it asks the
	// controller again (the overview's 15 s, a bulletin's results' 4 s …);
	// 0 serves them as shipped. Tests shorten them with it, so that a
	// browser test does not wait out a refresh; it cannot lengthen them.
	Refresh float64
}

// refreshMeta is the tag before which index.html gets the refresh factor,
// read by refreshMs in js/ui.js.
const refreshMeta = `<meta charset="utf-8">`

// Handler serves the console: "/" is the page, "/static/…" its files.
// Every answer is revalidated by ETag, so a weak link downloads a file
// once per release, and gzipped when the browser accepts it.
func Handler(opt Options) (http.Handler, error) {
	if opt.Refresh < 0 || opt.Refresh > 1 {
		return nil, fmt.Errorf("web: refresh factor %v: want one above 0 and up to 1, or 0 for the periods as shipped", opt.Refresh)
	}
	assets := map[string]*asset{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		if p == "static/index.html" && opt.Refresh != 0 && opt.Refresh != 1 {
			if !bytes.Contains(body, []byte(refreshMeta)) {
				return fmt.Errorf("web: static/index.html lacks %s", refreshMeta)
			}
			body = bytes.Replace(body, []byte(refreshMeta),
				fmt.Appendf(nil, "%s\n<meta name=\"loaxa-refresh\" content=\"%v\">", refreshMeta, opt.Refresh), 1)
		}
		sum := sha256.Sum256(body)
		a := &asset{body: body, typ: contentType(p), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(body)
		if err := zw.Close(); err != nil {
			return err
		}
		if buf.Len() < len(body) {
			a.gz = buf.Bytes()
		}
		assets["/"+p] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: load embedded files: %w", err)
	}
	if assets["/static/index.html"] == nil {
		return nil, fmt.Errorf("web: static/index.html is missing")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, assets)
	}), nil
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".json":
		return "application/json; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func serve(w http.ResponseWriter, r *http.Request, assets map[string]*asset) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "The console's pages are read with GET.", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if p == "/" || p == "/index.html" {
		p = "/static/index.html"
	}
	a := assets[p]
	if a == nil {
		http.Error(w, "Không có trang này. There is no such page; open / for the console.", http.StatusNotFound)
		return
	}
	h.Set("Content-Type", a.typ)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Add("Vary", "Accept-Encoding")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if a.gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(body)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
