//go:build !race

package host

const slow = 1
