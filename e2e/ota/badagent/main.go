// Command badagent is a broken node agent release for the over-the-air
// update tests: it exits at start, like a build that cannot run on the
// board.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "badagent: this build cannot start")
	os.Exit(3)
}
