package loaxa

import "strconv"

// Count says n things in English for operators' output and messages:
// Count(1, "node", "nodes") is "1 node", Count(2, …) "2 nodes".
func Count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
