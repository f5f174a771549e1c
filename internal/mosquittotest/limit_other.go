//go:build !linux

package mosquittotest

import (
	"fmt"
	"runtime"
)

// setOpenFiles would raise mosquitto's open files limit, which only Linux
// can do for another process (prlimit): elsewhere a broker for that many
// clients is started with its limit raised beforehand (ulimit -n).
func setOpenFiles(pid int, n uint64) error {
	return fmt.Errorf("raise mosquitto's open files limit to %d: not possible on %s; raise it with ulimit -n before the test", n, runtime.GOOS)
}
