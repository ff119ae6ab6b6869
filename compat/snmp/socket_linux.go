package snmp

import (
	"encoding/binary"
	"net"

	"golang.org/x/sys/unix"
)

// setReadBuffer asks for a receive buffer of want bytes: SO_RCVBUFFORCE
// (root or CAP_NET_ADMIN) ignores net.core.rmem_max; otherwise SO_RCVBUF,
// which the kernel caps at rmem_max. It returns what the kernel granted
// (Linux reports twice the requested size: it counts its own overhead).
func setReadBuffer(c *net.UDPConn, want int) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var serr error
	got := 0
	cerr := raw.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, want) != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, want)
		}
		got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	if cerr != nil {
		return 0, cerr
	}
	return got, serr
}

// enableDropCount asks the kernel to attach its count of datagrams dropped
// on this socket (receive buffer full) to every datagram (SO_RXQ_OVFL).
func enableDropCount(c *net.UDPConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	raw.Control(func(fd uintptr) {
		ok = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1) == nil
	})
	return ok
}

// oobSize is the control buffer a datagram's drop count needs.
var oobSize = unix.CmsgSpace(4)

// dropCount extracts the SO_RXQ_OVFL counter from a datagram's control
// messages.
func dropCount(oob []byte) (uint32, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_RXQ_OVFL && len(m.Data) >= 4 {
			return binary.NativeEndian.Uint32(m.Data), true
		}
	}
	return 0, false
}
