package nrpe

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Packet versions and types of the NRPE protocol.
const (
	Version2 = 2 // fixed 1024-byte buffer
	Version3 = 3 // variable length
	Version4 = 4 // variable length, v3 with the struct padding accounted for

	TypeQuery    = 1
	TypeResponse = 2

	// v2Size is sizeof(v2_packet): 10 header bytes, 1024 buffer bytes and
	// 2 bytes of struct padding.
	v2Size       = 1036
	v2BufferSize = 1024
	headerSize   = 10 // version, type, crc32, result code
	v3HeaderSize = 16 // + alignment, buffer length
	// MaxBuffer is the largest v3/v4 buffer nrpe accepts.
	MaxBuffer = 65536
	// v3 packets carry 3 bytes after the buffer (sizeof(v3_packet)-1).
	v3Trailer = 3
)

// Packet is one NRPE query or response.
type Packet struct {
	Version    int
	Type       int
	ResultCode int
	// Buffer is the text: a query ("command!arg1!arg2") or a response.
	Buffer string
}

var (
	// ErrCRC is returned for a packet whose checksum does not match.
	ErrCRC = errors.New("nrpe: packet CRC32 mismatch")
	// ErrVersion is returned for an unsupported packet version.
	ErrVersion = errors.New("nrpe: unsupported packet version")
)

// ReadPacket reads one packet of any supported version from r and checks
// its CRC. Reading is bounded: at most 16+MaxBuffer bytes are read.
func ReadPacket(r io.Reader) (Packet, error) {
	var hdr [v3HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:headerSize]); err != nil {
		return Packet{}, fmt.Errorf("nrpe: read header: %w", err)
	}
	p := Packet{
		Version:    int(binary.BigEndian.Uint16(hdr[0:2])),
		Type:       int(int16(binary.BigEndian.Uint16(hdr[2:4]))),
		ResultCode: int(int16(binary.BigEndian.Uint16(hdr[8:10]))),
	}
	wantCRC := binary.BigEndian.Uint32(hdr[4:8])
	switch p.Version {
	case Version2:
		var pkt [v2Size]byte
		copy(pkt[:], hdr[:headerSize])
		if _, err := io.ReadFull(r, pkt[headerSize:]); err != nil {
			return p, fmt.Errorf("nrpe: read v2 body: %w", err)
		}
		binary.BigEndian.PutUint32(pkt[4:8], 0)
		if crc32.ChecksumIEEE(pkt[:]) != wantCRC {
			return p, ErrCRC
		}
		p.Buffer = cString(pkt[headerSize : headerSize+v2BufferSize])
		return p, nil
	case Version3, Version4:
		if _, err := io.ReadFull(r, hdr[headerSize:v3HeaderSize]); err != nil {
			return p, fmt.Errorf("nrpe: read v%d header: %w", p.Version, err)
		}
		n := int32(binary.BigEndian.Uint32(hdr[12:16]))
		if n < 0 || n > MaxBuffer {
			return p, fmt.Errorf("nrpe: buffer length %d out of range 0..%d", n, MaxBuffer)
		}
		size := v3HeaderSize + int(n)
		if p.Version == Version3 {
			size += v3Trailer
		}
		pkt := make([]byte, size)
		copy(pkt, hdr[:])
		// A v3 sender's 3 trailing bytes are zero (nrpe callocs them) and
		// are not part of the buffer; we checksum them as zeros and
		// leave them unread rather than wait for bytes a client may not
		// send.
		if _, err := io.ReadFull(r, pkt[v3HeaderSize:v3HeaderSize+int(n)]); err != nil {
			return p, fmt.Errorf("nrpe: read v%d buffer: %w", p.Version, err)
		}
		binary.BigEndian.PutUint32(pkt[4:8], 0)
		pkt[10], pkt[11] = 0, 0 // alignment is not covered either
		if crc32.ChecksumIEEE(pkt) != wantCRC {
			return p, ErrCRC
		}
		p.Buffer = cString(pkt[v3HeaderSize : v3HeaderSize+int(n)])
		return p, nil
	}
	return p, fmt.Errorf("%w %d", ErrVersion, p.Version)
}

// cString returns b up to its first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Marshal encodes p as nrpe and check_nrpe do: a v2 packet is 1036 bytes
// with its unused buffer filled with random bytes (as nrpe does, so the
// CRC is not predictable); a v3/v4 packet carries the NUL-terminated text,
// padded to the size of a v2 packet when it is a query (check_nrpe does
// this so old servers can read it).
func (p Packet) Marshal() ([]byte, error) {
	switch p.Version {
	case Version2:
		pkt := make([]byte, v2Size)
		if _, err := rand.Read(pkt); err != nil {
			return nil, err
		}
		putHeader(pkt, p)
		text := p.Buffer
		if len(text) > v2BufferSize-1 {
			text = text[:v2BufferSize-1]
		}
		n := copy(pkt[headerSize:], text)
		pkt[headerSize+n] = 0
		pkt[headerSize+v2BufferSize-1] = 0
		binary.BigEndian.PutUint32(pkt[4:8], crc32.ChecksumIEEE(pkt))
		return pkt, nil
	case Version3, Version4:
		text := p.Buffer
		if len(text) > MaxBuffer-1 {
			text = text[:MaxBuffer-1]
		}
		bufLen := len(text) + 1
		size := v3HeaderSize + bufLen
		if p.Version == Version3 {
			size += v3Trailer
		}
		if p.Type == TypeQuery && size < v2Size {
			bufLen += v2Size - size
			size = v2Size
		}
		pkt := make([]byte, size)
		putHeader(pkt, p)
		binary.BigEndian.PutUint32(pkt[12:16], uint32(bufLen))
		copy(pkt[v3HeaderSize:], text)
		binary.BigEndian.PutUint32(pkt[4:8], crc32.ChecksumIEEE(pkt))
		return pkt, nil
	}
	return nil, fmt.Errorf("%w %d", ErrVersion, p.Version)
}

func putHeader(pkt []byte, p Packet) {
	binary.BigEndian.PutUint16(pkt[0:2], uint16(p.Version))
	binary.BigEndian.PutUint16(pkt[2:4], uint16(p.Type))
	binary.BigEndian.PutUint32(pkt[4:8], 0)
	binary.BigEndian.PutUint16(pkt[8:10], uint16(int16(p.ResultCode)))
}
