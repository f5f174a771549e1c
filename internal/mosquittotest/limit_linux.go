package mosquittotest

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// setOpenFiles sets the soft limit of open files of process pid to n,
// keeping its hard limit unless n is above it.
func setOpenFiles(pid int, n uint64) error {
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		return fmt.Errorf("read mosquitto's open files limit: %w", err)
	}
	lim := unix.Rlimit{Cur: n, Max: max(old.Max, n)}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		return fmt.Errorf("set mosquitto's open files limit to %d (hard limit %d): %w", n, old.Max, err)
	}
	return nil
}
