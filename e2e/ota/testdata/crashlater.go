// This file is added to the node agent by e2e/ota's build of a release
// that passes its trial and crashes later (go build -overlay): after each
// start as the installed agent, it panics a second in, as a release would
// at its first play or alert.

package main

import (
	"os"
	"slices"
	"time"
)

func init() {
	if os.Getenv("LOAXA_UPDATE_TRIAL") == "1" || !slices.Contains(os.Args, "--credentials") {
		return // on trial, or one of the agent's checks (--store-check)
	}
	for _, a := range os.Args {
		if a == "--store-check" || a == "--sound-check" || a == "--check" {
			return
		}
	}
	time.AfterFunc(time.Second, func() { panic("crashlater: this release crashes after its trial") })
}
