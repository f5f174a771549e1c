//go:build unix

package fleet

import (
	"fmt"
	"syscall"
)

// checkFileLimit refuses a fleet that would run out of file descriptors
// part way, which would show up as agents failing one by one.
func checkFileLimit(cfg Config) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil // cannot tell; let the system say it when it happens
	}
	perNode := uint64(1) // MQTT connection
	if cfg.DataDir != "" {
		perNode++ // bbolt file
	}
	const reserve = MaxDownloads + 2*64 // downloads and their files, logs, listeners
	need := uint64(cfg.Nodes)*perNode + reserve
	if need > lim.Cur {
		hint := "run fewer nodes per process"
		if cfg.DataDir != "" {
			hint += ", or drop --data to keep stores in memory"
		}
		return fmt.Errorf("fleet: %d nodes need about %d open files and this process may open %d: %s", cfg.Nodes, need, lim.Cur, hint)
	}
	return nil
}
