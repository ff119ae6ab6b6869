package snmp

import (
	"errors"
	"fmt"
)

// The receiver peeks at a message's header before handing it to gosnmp:
// the version and community (v1/v2c) or the USM user, engine and security
// level (v3) decide whether the message is decoded at all, so a flood of
// wrong communities or unknown users costs a few comparisons, and v3
// engine discovery, reports and per-user credentials are handled here.

var errBER = errors.New("malformed BER")

// tlv reads one BER TLV from b: definite lengths only, single-octet tags.
func tlv(b []byte) (tag byte, val, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, errBER
	}
	tag = b[0]
	if tag&0x1f == 0x1f {
		return 0, nil, nil, fmt.Errorf("%w: multi-octet tag", errBER)
	}
	n := int(b[1])
	off := 2
	if n&0x80 != 0 {
		octets := n & 0x7f
		if octets == 0 || octets > 3 || len(b) < 2+octets {
			return 0, nil, nil, fmt.Errorf("%w: length", errBER)
		}
		n = 0
		for _, c := range b[2 : 2+octets] {
			n = n<<8 | int(c)
		}
		off += octets
	}
	if n > len(b)-off {
		return 0, nil, nil, fmt.Errorf("%w: truncated", errBER)
	}
	return tag, b[off : off+n], b[off+n:], nil
}

// expect reads a TLV with the given tag.
func expect(b []byte, want byte) (val, rest []byte, err error) {
	tag, val, rest, err := tlv(b)
	if err != nil {
		return nil, nil, err
	}
	if tag != want {
		return nil, nil, fmt.Errorf("%w: tag 0x%02x, want 0x%02x", errBER, tag, want)
	}
	return val, rest, nil
}

// berInt decodes an INTEGER of at most 5 octets (enough for 32-bit
// unsigned values with their sign octet).
func berInt(v []byte) (int64, error) {
	if len(v) == 0 || len(v) > 5 {
		return 0, fmt.Errorf("%w: integer of %d octets", errBER, len(v))
	}
	x := int64(int8(v[0]))
	for _, c := range v[1:] {
		x = x<<8 | int64(c)
	}
	return x, nil
}

const (
	tagInteger  = 0x02
	tagOctets   = 0x04
	tagSequence = 0x30
)

// header is what the receiver needs from a message before decoding it.
type header struct {
	version   int64 // 0 = v1, 1 = v2c, 3 = v3
	community string
	// v3
	msgID     int64
	flags     byte
	secModel  int64
	engineID  string
	boots     int64
	time      int64
	user      string
	scopedPDU []byte
}

// peekHeader parses the message wrapper and, for v3, the USM security
// parameters.
func peekHeader(b []byte) (*header, error) {
	msg, rest, err := expect(b, tagSequence)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the message", errBER, len(rest))
	}
	v, msg, err := expect(msg, tagInteger)
	if err != nil {
		return nil, err
	}
	h := &header{}
	if h.version, err = berInt(v); err != nil {
		return nil, err
	}
	switch h.version {
	case 0, 1:
		c, _, err := expect(msg, tagOctets)
		if err != nil {
			return nil, err
		}
		h.community = string(c)
		return h, nil
	case 3:
	default:
		return nil, fmt.Errorf("unsupported SNMP version %d", h.version)
	}
	global, msg, err := expect(msg, tagSequence)
	if err != nil {
		return nil, err
	}
	ints := make([]int64, 0, 2)
	for range 2 { // msgID, msgMaxSize
		var iv []byte
		if iv, global, err = expect(global, tagInteger); err != nil {
			return nil, err
		}
		x, err := berInt(iv)
		if err != nil {
			return nil, err
		}
		ints = append(ints, x)
	}
	h.msgID = ints[0]
	fl, global, err := expect(global, tagOctets)
	if err != nil {
		return nil, err
	}
	if len(fl) != 1 {
		return nil, fmt.Errorf("%w: msgFlags of %d octets", errBER, len(fl))
	}
	h.flags = fl[0]
	sm, _, err := expect(global, tagInteger)
	if err != nil {
		return nil, err
	}
	if h.secModel, err = berInt(sm); err != nil {
		return nil, err
	}
	sp, scoped, err := expect(msg, tagOctets)
	if err != nil {
		return nil, err
	}
	h.scopedPDU = scoped
	if h.secModel != 3 {
		return h, nil
	}
	usm, _, err := expect(sp, tagSequence)
	if err != nil {
		return nil, err
	}
	e, usm, err := expect(usm, tagOctets)
	if err != nil {
		return nil, err
	}
	h.engineID = string(e)
	for _, dst := range []*int64{&h.boots, &h.time} {
		var iv []byte
		if iv, usm, err = expect(usm, tagInteger); err != nil {
			return nil, err
		}
		if *dst, err = berInt(iv); err != nil {
			return nil, err
		}
	}
	u, _, err := expect(usm, tagOctets)
	if err != nil {
		return nil, err
	}
	h.user = string(u)
	return h, nil
}
