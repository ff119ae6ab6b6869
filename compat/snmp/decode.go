package snmp

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/gosnmp/gosnmp"
)

// OIDs of USM report counters (RFC 3414 §5).
const (
	oidUnsupportedSecLevels = ".1.3.6.1.6.3.15.1.1.1.0"
	oidNotInTimeWindows     = ".1.3.6.1.6.3.15.1.1.2.0"
	oidUnknownUserNames     = ".1.3.6.1.6.3.15.1.1.3.0"
	oidUnknownEngineIDs     = ".1.3.6.1.6.3.15.1.1.4.0"
	oidWrongDigests         = ".1.3.6.1.6.3.15.1.1.5.0"
	oidSnmpTrapOID          = "1.3.6.1.6.3.1.1.4.1.0"
	oidSysUpTime            = "1.3.6.1.2.1.1.3.0"
	oidSnmpTraps            = "1.3.6.1.6.3.1.1.5"
)

// timeWindow is RFC 3414's 150 s timeliness window.
const timeWindow = 150

// counters are the receiver's statistics; see ReceiverStats.
type counters struct {
	received, decoded, published, droppedQueueFull, droppedBytes        atomic.Uint64
	authFailures, unknownUsers, unknownEngine, notInTimeWindow          atomic.Uint64
	badCommunity, sourceRefused, malformed, unsupported                 atomic.Uint64
	informs, informsAcked, informDuplicates, reportsSent, publishErrors atomic.Uint64
	sendErrors, readErrors                                              atomic.Uint64
}

// reason classifies a packet that was not accepted, for counters and
// rate-limited logs.
type reason uint8

const (
	accepted reason = iota
	rSource
	rMalformed
	rUnsupported
	rCommunity
	rUnknownUser
	rAuth
	rEngine
	rTimeWindow
	rDiscovery // not a refusal: an engine discovery probe, answered
	nReasons
)

var reasonNames = [nReasons]string{"accepted", "source not allowed", "malformed packet", "unsupported PDU",
	"bad community", "unknown v3 user", "v3 authentication failed", "v3 unknown engine ID", "v3 not in time window", "engine discovery"}

// outcome is what decoding one datagram produced.
type outcome struct {
	reason reason
	err    error  // detail of a refusal
	reply  []byte // datagram to send back: a report now, or for an accepted inform the response once published
	ev     *trapEvent
}

// trapEvent is a decoded, authenticated trap or inform.
type trapEvent struct {
	pkt       *gosnmp.SnmpPacket
	version   string // "1", "2c", "3"
	community string
	user      string
	inform    bool
}

// engine is this receiver's SNMPv3 identity as an authoritative engine
// (the one informs are sent to).
type engine struct {
	id    string
	boots uint32
	start time.Time
}

func (e *engine) time(now time.Time) uint32 {
	d := now.Sub(e.start) / time.Second
	if d < 0 {
		return 0
	}
	return uint32(d)
}

// defaultEngineID derives a stable engine ID from the host name and listen
// address: RFC 3411 format with net-snmp's enterprise number and 8 octets
// of hash, so a restart keeps the ID senders have cached.
func defaultEngineID(listen string) string {
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte("recon snmptrap|" + host + "|" + listen))
	return string(append([]byte{0x80, 0x00, 0x1f, 0x88, 0x05}, sum[:8]...))
}

// bootsNow is the engine boots value of an engine starting now: the Unix
// time, which grows across restarts without persistent state (RFC 3414
// requires snmpEngineBoots to increase on every restart), capped at the
// RFC's maximum.
func bootsNow(now time.Time) uint32 {
	b := now.Unix()
	if b < 1 {
		b = 1
	}
	if b > 2147483646 {
		b = 2147483646
	}
	return uint32(b)
}

type userDecoder struct {
	u  *usmUser
	gs *gosnmp.GoSNMP
}

// decoder turns datagrams into authenticated trap events. It holds only
// configuration and counters, so every worker uses the same one.
type decoder struct {
	communities map[string]bool
	allowed     []netip.Prefix
	users       map[string][]*userDecoder
	v1v2        *gosnmp.GoSNMP
	discovery   *gosnmp.GoSNMP
	eng         atomic.Pointer[engine]
	st          *counters
}

func newDecoder(communities []string, allowed []netip.Prefix, users []*usmUser, engineID string, st *counters) *decoder {
	d := &decoder{communities: map[string]bool{}, allowed: allowed, users: map[string][]*userDecoder{}, st: st,
		v1v2:      &gosnmp.GoSNMP{Version: gosnmp.Version2c},
		discovery: &gosnmp.GoSNMP{Version: gosnmp.Version3, SecurityModel: gosnmp.UserSecurityModel}}
	for _, c := range communities {
		d.communities[c] = true
	}
	for _, u := range users {
		gs := &gosnmp.GoSNMP{Version: gosnmp.Version3, SecurityModel: gosnmp.UserSecurityModel, MsgFlags: u.level,
			SecurityParameters: &gosnmp.UsmSecurityParameters{UserName: u.name,
				AuthenticationProtocol: u.auth, AuthenticationPassphrase: u.authPass,
				PrivacyProtocol: u.priv, PrivacyPassphrase: u.privPass}}
		d.users[u.name] = append(d.users[u.name], &userDecoder{u: u, gs: gs})
	}
	now := time.Now()
	d.eng.Store(&engine{id: engineID, boots: bootsNow(now), start: now})
	return d
}

func (d *decoder) sourceAllowed(a netip.Addr) bool {
	if len(d.allowed) == 0 {
		return true
	}
	a = a.Unmap()
	for _, p := range d.allowed {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func refuse(r reason, format string, args ...any) outcome {
	return outcome{reason: r, err: fmt.Errorf(format, args...)}
}

// decode authenticates and decodes one datagram. It never panics on any
// input (FuzzDecodePacket) and never keeps a reference to data beyond the
// returned event's decoded values.
func (d *decoder) decode(data []byte, from netip.AddrPort, now time.Time) outcome {
	if !d.sourceAllowed(from.Addr()) {
		return refuse(rSource, "source %s is not in allowed_sources", from.Addr().Unmap())
	}
	h, err := peekHeader(data)
	if err != nil {
		return refuse(rMalformed, "%w", err)
	}
	if h.version == 3 {
		return d.decodeV3(h, data, now)
	}
	if !d.communities[h.community] {
		return refuse(rCommunity, "community %q is not allowed", printable(h.community))
	}
	pkt, err := d.v1v2.UnmarshalTrap(data, false)
	if err != nil {
		return refuse(rMalformed, "%w", err)
	}
	ev := &trapEvent{pkt: pkt, version: "2c", community: h.community}
	switch {
	case h.version == 0 && pkt.PDUType == gosnmp.Trap:
		ev.version = "1"
		return outcome{ev: ev}
	case h.version == 1 && pkt.PDUType == gosnmp.SNMPv2Trap:
		return outcome{ev: ev}
	case h.version == 1 && pkt.PDUType == gosnmp.InformRequest:
		ev.inform = true
		resp := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: pkt.Community, PDUType: gosnmp.GetResponse,
			RequestID: pkt.RequestID, Variables: pkt.Variables}
		reply, err := resp.MarshalMsg()
		if err != nil {
			return refuse(rMalformed, "inform response: %w", err)
		}
		return outcome{ev: ev, reply: reply}
	}
	return refuse(rUnsupported, "v%s %v PDU is not a trap or inform", map[int64]string{0: "1", 1: "2c"}[h.version], pkt.PDUType)
}

func (d *decoder) decodeV3(h *header, data []byte, now time.Time) outcome {
	eng := d.eng.Load()
	if h.secModel != int64(gosnmp.UserSecurityModel) {
		return refuse(rUnsupported, "v3 security model %d (only USM is supported)", h.secModel)
	}
	level := gosnmp.SnmpV3MsgFlags(h.flags) & gosnmp.AuthPriv
	reportable := gosnmp.SnmpV3MsgFlags(h.flags)&gosnmp.Reportable != 0
	if level == 2 {
		return refuse(rMalformed, "v3 msgFlags privacy without authentication")
	}
	if h.user == "" && h.engineID == "" && level == gosnmp.NoAuthNoPriv {
		// Engine ID discovery (RFC 3414 §4): answer with our engine ID,
		// boots and time so the sender can localize keys for an inform.
		if !reportable {
			return refuse(rMalformed, "v3 message without user or engine ID")
		}
		pkt, err := d.discovery.UnmarshalTrap(clone(data), false)
		if err != nil || pkt.PDUType != gosnmp.GetRequest || len(pkt.Variables) != 0 {
			return refuse(rMalformed, "v3 message without user or engine ID that is not an engine discovery request")
		}
		n := d.st.unknownEngine.Add(1)
		return outcome{reason: rDiscovery, reply: d.report(eng, h, pkt.RequestID, oidUnknownEngineIDs, n, nil, now)}
	}
	cands := d.users[h.user]
	if len(cands) == 0 {
		n := d.st.unknownUsers.Add(1)
		o := refuse(rUnknownUser, "v3 user %q is not configured", printable(h.user))
		if reportable {
			o.reply = d.report(eng, h, 0, oidUnknownUserNames, n, nil, now)
		}
		return o
	}
	var tried int
	var lastErr error
	for _, ud := range cands {
		if ud.u.level != level {
			continue
		}
		if ud.u.engineID != "" && h.engineID != ud.u.engineID && h.engineID != eng.id {
			continue
		}
		tried++
		pkt, err := ud.gs.UnmarshalTrap(clone(data), true)
		if err != nil {
			lastErr = err
			continue
		}
		return d.acceptV3(eng, h, ud, pkt, now)
	}
	n := d.st.authFailures.Add(1)
	if tried == 0 {
		o := refuse(rAuth, "v3 user %q: security level %s or engine ID %x does not match its configuration", h.user, level, h.engineID)
		if reportable {
			o.reply = d.report(eng, h, 0, oidUnsupportedSecLevels, n, nil, now)
		}
		return o
	}
	o := refuse(rAuth, "v3 user %q: %v", h.user, lastErr)
	if reportable {
		o.reply = d.report(eng, h, 0, oidWrongDigests, n, nil, now)
	}
	return o
}

func (d *decoder) acceptV3(eng *engine, h *header, ud *userDecoder, pkt *gosnmp.SnmpPacket, now time.Time) outcome {
	ev := &trapEvent{pkt: pkt, version: "3", user: ud.u.name}
	switch pkt.PDUType {
	case gosnmp.SNMPv2Trap:
		if ud.u.engineID != "" && h.engineID != ud.u.engineID {
			d.st.authFailures.Add(1)
			return refuse(rAuth, "v3 user %q: trap from engine %x, configured engine_id %x", h.user, h.engineID, ud.u.engineID)
		}
		return outcome{ev: ev}
	case gosnmp.InformRequest:
	default:
		return refuse(rUnsupported, "v3 %v PDU is not a trap or inform", pkt.PDUType)
	}
	ev.inform = true
	usm, ok := pkt.SecurityParameters.(*gosnmp.UsmSecurityParameters)
	if !ok {
		return refuse(rMalformed, "v3 inform without USM parameters")
	}
	if h.engineID != eng.id {
		// The sender has a stale engine ID for us (we changed engine_id):
		// report ours so that it rediscovers.
		n := d.st.unknownEngine.Add(1)
		return outcome{reason: rEngine, err: fmt.Errorf("v3 inform for engine %x, ours is %x", h.engineID, eng.id),
			reply: d.report(eng, h, pkt.RequestID, oidUnknownEngineIDs, n, nil, now)}
	}
	if ourTime := int64(eng.time(now)); h.boots != int64(eng.boots) || h.time < ourTime-timeWindow || h.time > ourTime+timeWindow {
		// Outside the timeliness window (RFC 3414 §3.2.7): an authenticated
		// report with our boots and time lets the sender resynchronize.
		n := d.st.notInTimeWindow.Add(1)
		sp := usm.Copy().(*gosnmp.UsmSecurityParameters)
		return outcome{reason: rTimeWindow, err: fmt.Errorf("v3 inform from user %q: boots/time %d/%d, ours %d/%d", h.user, h.boots, h.time, eng.boots, ourTime),
			reply: d.report(eng, h, pkt.RequestID, oidNotInTimeWindows, n, sp, now)}
	}
	sp := usm.Copy().(*gosnmp.UsmSecurityParameters)
	sp.AuthoritativeEngineBoots, sp.AuthoritativeEngineTime = eng.boots, eng.time(now)
	if pkt.MsgFlags&gosnmp.AuthPriv == gosnmp.AuthPriv {
		// A fresh salt: reusing the sender's would reuse its IV.
		salt := make([]byte, 8)
		if _, err := rand.Read(salt); err != nil {
			return refuse(rMalformed, "inform response salt: %w", err)
		}
		sp.PrivacyParameters = salt
	}
	resp := &gosnmp.SnmpPacket{Version: gosnmp.Version3, MsgFlags: pkt.MsgFlags &^ gosnmp.Reportable, SecurityModel: gosnmp.UserSecurityModel,
		SecurityParameters: sp, ContextEngineID: pkt.ContextEngineID, ContextName: pkt.ContextName, PDUType: gosnmp.GetResponse,
		MsgID: pkt.MsgID, RequestID: pkt.RequestID, Variables: pkt.Variables}
	reply, err := resp.MarshalMsg()
	if err != nil {
		return refuse(rMalformed, "v3 inform response: %w", err)
	}
	return outcome{ev: ev, reply: reply}
}

// report builds a Report PDU carrying one USM counter. sp nil sends it
// noAuthNoPriv; otherwise authenticated with sp's keys (notInTimeWindow).
func (d *decoder) report(eng *engine, h *header, reqID uint32, oid string, count uint64, sp *gosnmp.UsmSecurityParameters, now time.Time) []byte {
	flags := gosnmp.NoAuthNoPriv
	if sp == nil {
		sp = &gosnmp.UsmSecurityParameters{UserName: h.user}
	} else {
		flags = gosnmp.AuthNoPriv
	}
	sp.AuthoritativeEngineID, sp.AuthoritativeEngineBoots, sp.AuthoritativeEngineTime = eng.id, eng.boots, eng.time(now)
	p := &gosnmp.SnmpPacket{Version: gosnmp.Version3, MsgFlags: flags, SecurityModel: gosnmp.UserSecurityModel,
		SecurityParameters: sp, ContextEngineID: eng.id, PDUType: gosnmp.Report, MsgID: uint32(h.msgID), RequestID: reqID,
		Variables: []gosnmp.SnmpPDU{{Name: oid, Type: gosnmp.Counter32, Value: uint32(count)}}}
	b, err := p.MarshalMsg()
	if err != nil {
		return nil
	}
	return b
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// printable quotes untrusted text for logs.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return s
}
