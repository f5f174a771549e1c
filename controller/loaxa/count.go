package loaxa

import "loaxa.vn/internal/plural"

// Count says n things in English for operators' output and messages:
// Count(1, "node", "nodes") is "1 node", Count(2, …) "2 nodes". The node
// programs say counts with the same internal/plural.
func Count(n int, one, many string) string { return plural.Count(n, one, many) }
