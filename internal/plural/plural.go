// Package plural says counts in English for operators' messages, logs and
// command output, so that a count of one reads "1 attempt", not "1
// attempts". The controller (loaxa.Count) and the node programs share it.
package plural

import "strconv"

// Count says n things: Count(1, "node", "nodes") is "1 node", Count(2, …)
// "2 nodes", Count(0, …) "0 nodes".
func Count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
