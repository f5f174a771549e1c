package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"loaxa.vn/firmware-sim/board"
	"loaxa.vn/protocol"
)

// ErrNothingCached: a box's content cache holds no file to damage.
var ErrNothingCached = errors.New("no cached content")

// DamageCache changes one bit in the middle of cached content id (""
// for the largest file of the box's content cache), as a failing SD card
// does to a file it stored correctly, and returns the content's id. The
// node finds it when a play reads the file (or as it lists a file kept
// without a chunk list), fetches it again, and reports the
// storage-damaged alarm.
func (s *Sim) DamageCache(id string) (string, error) {
	dir := filepath.Join(s.Dir, "content")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("damage the cache of %s: %w", s.ID, err)
	}
	want := id
	id = ""
	var size int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !e.Type().IsRegular() || !protocol.ValidContentID(e.Name()) {
			continue
		}
		if want == "" && info.Size() > size || e.Name() == want {
			id, size = e.Name(), info.Size()
		}
	}
	if size == 0 {
		if want != "" {
			return "", fmt.Errorf("damage the cache of %s: content %s: %w", s.ID, want, ErrNothingCached)
		}
		return "", fmt.Errorf("damage the cache of %s: %w", s.ID, ErrNothingCached)
	}
	f, err := os.OpenFile(filepath.Join(dir, id), os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("damage the cache of %s: %w", s.ID, err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, size/2); err != nil {
		return "", fmt.Errorf("damage the cache of %s: %w", s.ID, err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, size/2); err != nil {
		return "", fmt.Errorf("damage the cache of %s: %w", s.ID, err)
	}
	return id, f.Close()
}

// Control serves fault injection for the fleet's boxes over HTTP: the
// boards' faults (board.Control; a box whose SD card goes read-only or is
// mended, board.FaultCardReadOnly, starts its agent again) and
//
//	POST /boards/{id}/storage/damage[?content=ID]   a bit of a cached file changed (Sim.DamageCache)
//
// which answers {"content": id}, or 409 when the box has no such file.
func (f *Fleet) Control() http.Handler {
	mux := http.NewServeMux()
	boards := board.Control(func(id string) *board.Board {
		if s := f.Sim(id); s != nil {
			return s.Board
		}
		return nil
	})
	mux.Handle("/", boards)
	card := func(w http.ResponseWriter, r *http.Request) {
		boards.ServeHTTP(w, r)
		if s := f.Sim(r.PathValue("id")); s != nil {
			s.cardChanged()
		}
	}
	mux.HandleFunc("POST /boards/{id}/faults/"+board.FaultCardReadOnly, card)
	mux.HandleFunc("DELETE /boards/{id}/faults/"+board.FaultCardReadOnly, card)
	mux.HandleFunc("POST /boards/{id}/storage/damage", func(w http.ResponseWriter, r *http.Request) {
		status, body := http.StatusOK, map[string]string{}
		if s := f.Sim(r.PathValue("id")); s == nil {
			status, body["error"] = http.StatusNotFound, fmt.Sprintf("no simulated board %q", r.PathValue("id"))
		} else if id, err := s.DamageCache(r.URL.Query().Get("content")); errors.Is(err, ErrNothingCached) {
			status, body["error"] = http.StatusConflict, err.Error()
		} else if err != nil {
			status, body["error"] = http.StatusInternalServerError, err.Error()
		} else {
			body["content"] = id
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(body)
	})
	return mux
}
