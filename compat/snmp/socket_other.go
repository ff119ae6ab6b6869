//go:build !linux

package snmp

import "net"

// setReadBuffer sets SO_RCVBUF; the granted size is not portable to read
// back, so the request is reported.
func setReadBuffer(c *net.UDPConn, want int) (int, error) {
	if err := c.SetReadBuffer(want); err != nil {
		return 0, err
	}
	return want, nil
}

// enableDropCount: the kernel drop counter is Linux-only.
func enableDropCount(*net.UDPConn) bool { return false }

var oobSize = 0

func dropCount([]byte) (uint32, bool) { return 0, false }
