// This file is added to the node agent by e2e/ota's build of a release
// that passes its trial and, installed, never connects to the broker
// although it reaches it (go build -overlay): as the installed agent it
// speaks MQTT to the controller's HTTP port, as a release whose MQTT were
// broken would, while the network and the broker are fine.
//
// It reads its credentials from a copy naming that port as the broker. The
// previous agent, exec'd in its place by the rollback with the same
// arguments, must read the board's own: so once this agent has read the
// copy — it has counted its start in the probation marker, which it does
// after — the copy gets the board's credentials back.

package main

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

func init() {
	if os.Getenv("LOAXA_UPDATE_TRIAL") == "1" {
		return // on trial: connects as a good release does
	}
	for i, a := range os.Args {
		if a != "--credentials" || i+1 >= len(os.Args) {
			continue
		}
		own, err := os.ReadFile(os.Args[i+1])
		if err != nil {
			return
		}
		var cred map[string]any
		if json.Unmarshal(own, &cred) != nil {
			return
		}
		c, _ := cred["controller"].(string)
		u, err := url.Parse(c)
		if err != nil {
			return
		}
		cred["broker"] = "tcp://" + u.Host // answers, but not in MQTT
		deaf, _ := json.Marshal(cred)
		copyPath := filepath.Join(filepath.Dir(os.Args[i+1]), "deaf-credentials.json")
		exe, err := os.Executable()
		if err != nil || os.WriteFile(copyPath, deaf, 0o600) != nil {
			return
		}
		os.Args[i+1] = copyPath
		go func() {
			for {
				var m struct {
					Version string `json:"version"`
					Starts  int    `json:"starts"`
				}
				raw, _ := os.ReadFile(exe + ".probation")
				if json.Unmarshal(raw, &m) == nil && m.Version == version && m.Starts > 0 {
					os.WriteFile(copyPath, own, 0o600)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		return
	}
}
