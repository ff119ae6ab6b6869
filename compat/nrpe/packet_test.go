package nrpe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

func TestPacketRoundTrip(t *testing.T) {
	for _, v := range []int{Version2, Version3, Version4} {
		for _, typ := range []int{TypeQuery, TypeResponse} {
			p := Packet{Version: v, Type: typ, ResultCode: 2, Buffer: "check_load!5!10"}
			b, err := p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if v == Version2 && len(b) != v2Size {
				t.Errorf("v2 packet is %d bytes", len(b))
			}
			if typ == TypeQuery && len(b) < v2Size {
				t.Errorf("v%d query shorter than a v2 packet: %d", v, len(b))
			}
			got, err := ReadPacket(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("v%d type %d: %v", v, typ, err)
			}
			if got != p {
				t.Errorf("v%d: got %+v want %+v", v, got, p)
			}
		}
	}
}

func TestLongResponse(t *testing.T) {
	long := strings.Repeat("x", 5000)
	b, _ := Packet{Version: Version4, Type: TypeResponse, Buffer: long}.Marshal()
	got, err := ReadPacket(bytes.NewReader(b))
	if err != nil || got.Buffer != long {
		t.Fatalf("v4 long: %v len %d", err, len(got.Buffer))
	}
	b, _ = Packet{Version: Version2, Type: TypeResponse, Buffer: long}.Marshal()
	got, _ = ReadPacket(bytes.NewReader(b))
	if len(got.Buffer) != 1023 {
		t.Errorf("v2 truncation: %d bytes", len(got.Buffer))
	}
}

func TestReadPacketErrors(t *testing.T) {
	good, _ := Packet{Version: Version2, Type: TypeQuery, Buffer: "x"}.Marshal()
	flipped := append([]byte(nil), good...)
	flipped[20] ^= 0xff
	bad3 := make([]byte, 16)
	binary.BigEndian.PutUint16(bad3[0:2], 4)
	binary.BigEndian.PutUint32(bad3[12:16], 70000)
	neg := append([]byte(nil), bad3...)
	binary.BigEndian.PutUint32(neg[12:16], 0xffffffff)
	v9 := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(v9[0:2], 9)
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "read header"},
		{"short header", good[:5], "read header"},
		{"short v2 body", good[:100], "read v2 body"},
		{"crc", flipped, "CRC32 mismatch"},
		{"too long", bad3, "out of range"},
		{"negative length", neg, "out of range"},
		{"version", v9, "unsupported packet version 9"},
		{"short v4 buffer", bad3[:14], "read v4 header"},
	}
	for _, c := range cases {
		_, err := ReadPacket(bytes.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := ReadPacket(bytes.NewReader(flipped)); !errors.Is(err, ErrCRC) {
		t.Error("CRC error not ErrCRC")
	}
}

// A v3 packet exactly as check_nrpe 4.1 builds it: 19 + buffer_length
// bytes, CRC over all of them.
func TestV3AsCheckNRPESendsIt(t *testing.T) {
	query := "check_users"
	pktSize := 20 - 1 + len(query) + 1
	if pktSize < v2Size {
		pktSize = v2Size
	}
	pkt := make([]byte, pktSize)
	binary.BigEndian.PutUint16(pkt[0:2], 3)
	binary.BigEndian.PutUint16(pkt[2:4], 1)
	binary.BigEndian.PutUint32(pkt[12:16], uint32(pktSize-20+1))
	copy(pkt[16:], query)
	binary.BigEndian.PutUint32(pkt[4:8], crc32.ChecksumIEEE(pkt))
	p, err := ReadPacket(bytes.NewReader(pkt))
	if err != nil || p.Buffer != query || p.Version != 3 {
		t.Fatalf("%+v %v", p, err)
	}
}

func FuzzReadPacket(f *testing.F) {
	for _, v := range []int{2, 3, 4} {
		b, _ := Packet{Version: v, Type: TypeQuery, Buffer: "check_load!1!2"}.Marshal()
		f.Add(b)
	}
	f.Add([]byte{0, 4, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadPacket(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(p.Buffer) > MaxBuffer {
			t.Fatalf("buffer of %d bytes accepted", len(p.Buffer))
		}
		if strings.IndexByte(p.Buffer, 0) >= 0 {
			t.Fatal("NUL in buffer")
		}
		// Anything accepted must survive a round trip.
		out, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if q, err := ReadPacket(bytes.NewReader(out)); err != nil || q.Buffer != truncate(p) {
			t.Fatalf("round trip: %v %q vs %q", err, q.Buffer, p.Buffer)
		}
	})
}

func truncate(p Packet) string {
	if p.Version == Version2 && len(p.Buffer) > 1023 {
		return p.Buffer[:1023]
	}
	if len(p.Buffer) > MaxBuffer-1 {
		return p.Buffer[:MaxBuffer-1]
	}
	return p.Buffer
}
