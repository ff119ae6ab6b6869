//go:build race

package host

// slow scales the timing of tests under the race detector, which makes
// every process several times slower.
const slow = 3
