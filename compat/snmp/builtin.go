package snmp

import (
	"strconv"
	"strings"
)

// builtinNodes are the names recon knows without any MIB file: the SMI
// roots every module imports from, and the standard notifications and
// objects of SNMPv2-MIB and IF-MIB (Debian ships the IETF MIBs only in
// non-free, so a stock system has none of them). One node per line:
// module, name, OID, kind (o = object, n = notification, - = other),
// syntax.
const builtinNodes = `
SNMPv2-SMI zeroDotZero 0.0 - -
SNMPv2-SMI ccitt 0 - -
SNMPv2-SMI iso 1 - -
SNMPv2-SMI joint-iso-ccitt 2 - -
SNMPv2-SMI org 1.3 - -
SNMPv2-SMI dod 1.3.6 - -
SNMPv2-SMI internet 1.3.6.1 - -
SNMPv2-SMI directory 1.3.6.1.1 - -
SNMPv2-SMI mgmt 1.3.6.1.2 - -
SNMPv2-SMI mib-2 1.3.6.1.2.1 - -
SNMPv2-SMI transmission 1.3.6.1.2.1.10 - -
SNMPv2-SMI experimental 1.3.6.1.3 - -
SNMPv2-SMI private 1.3.6.1.4 - -
SNMPv2-SMI enterprises 1.3.6.1.4.1 - -
SNMPv2-SMI security 1.3.6.1.5 - -
SNMPv2-SMI snmpV2 1.3.6.1.6 - -
SNMPv2-SMI snmpDomains 1.3.6.1.6.1 - -
SNMPv2-SMI snmpProxys 1.3.6.1.6.2 - -
SNMPv2-SMI snmpModules 1.3.6.1.6.3 - -
SNMPv2-MIB system 1.3.6.1.2.1.1 - -
SNMPv2-MIB sysDescr 1.3.6.1.2.1.1.1 o DisplayString
SNMPv2-MIB sysObjectID 1.3.6.1.2.1.1.2 o OBJECT-IDENTIFIER
SNMPv2-MIB sysUpTime 1.3.6.1.2.1.1.3 o TimeTicks
SNMPv2-MIB sysContact 1.3.6.1.2.1.1.4 o DisplayString
SNMPv2-MIB sysName 1.3.6.1.2.1.1.5 o DisplayString
SNMPv2-MIB sysLocation 1.3.6.1.2.1.1.6 o DisplayString
SNMPv2-MIB sysServices 1.3.6.1.2.1.1.7 o INTEGER
SNMPv2-MIB sysORLastChange 1.3.6.1.2.1.1.8 o TimeStamp
SNMPv2-MIB snmp 1.3.6.1.2.1.11 - -
SNMPv2-MIB snmpMIB 1.3.6.1.6.3.1 - -
SNMPv2-MIB snmpMIBObjects 1.3.6.1.6.3.1.1 - -
SNMPv2-MIB snmpTrap 1.3.6.1.6.3.1.1.4 - -
SNMPv2-MIB snmpTrapOID 1.3.6.1.6.3.1.1.4.1 o OBJECT-IDENTIFIER
SNMPv2-MIB snmpTrapEnterprise 1.3.6.1.6.3.1.1.4.3 o OBJECT-IDENTIFIER
SNMPv2-MIB snmpTraps 1.3.6.1.6.3.1.1.5 - -
SNMPv2-MIB coldStart 1.3.6.1.6.3.1.1.5.1 n -
SNMPv2-MIB warmStart 1.3.6.1.6.3.1.1.5.2 n -
SNMPv2-MIB authenticationFailure 1.3.6.1.6.3.1.1.5.5 n -
SNMP-COMMUNITY-MIB snmpTrapAddress 1.3.6.1.6.3.18.1.3 o IpAddress
SNMP-COMMUNITY-MIB snmpTrapCommunity 1.3.6.1.6.3.18.1.4 o OCTET-STRING
SNMP-USER-BASED-SM-MIB usmStatsUnsupportedSecLevels 1.3.6.1.6.3.15.1.1.1 o Counter32
SNMP-USER-BASED-SM-MIB usmStatsNotInTimeWindows 1.3.6.1.6.3.15.1.1.2 o Counter32
SNMP-USER-BASED-SM-MIB usmStatsUnknownUserNames 1.3.6.1.6.3.15.1.1.3 o Counter32
SNMP-USER-BASED-SM-MIB usmStatsUnknownEngineIDs 1.3.6.1.6.3.15.1.1.4 o Counter32
SNMP-USER-BASED-SM-MIB usmStatsWrongDigests 1.3.6.1.6.3.15.1.1.5 o Counter32
SNMP-USER-BASED-SM-MIB usmStatsDecryptionErrors 1.3.6.1.6.3.15.1.1.6 o Counter32
IF-MIB interfaces 1.3.6.1.2.1.2 - -
IF-MIB ifNumber 1.3.6.1.2.1.2.1 o Integer32
IF-MIB ifTable 1.3.6.1.2.1.2.2 - -
IF-MIB ifEntry 1.3.6.1.2.1.2.2.1 - -
IF-MIB ifIndex 1.3.6.1.2.1.2.2.1.1 o InterfaceIndex
IF-MIB ifDescr 1.3.6.1.2.1.2.2.1.2 o DisplayString
IF-MIB ifType 1.3.6.1.2.1.2.2.1.3 o IANAifType
IF-MIB ifMtu 1.3.6.1.2.1.2.2.1.4 o Integer32
IF-MIB ifSpeed 1.3.6.1.2.1.2.2.1.5 o Gauge32
IF-MIB ifPhysAddress 1.3.6.1.2.1.2.2.1.6 o PhysAddress
IF-MIB ifAdminStatus 1.3.6.1.2.1.2.2.1.7 o ifAdminStatus
IF-MIB ifOperStatus 1.3.6.1.2.1.2.2.1.8 o ifOperStatus
IF-MIB ifLastChange 1.3.6.1.2.1.2.2.1.9 o TimeTicks
IF-MIB ifInOctets 1.3.6.1.2.1.2.2.1.10 o Counter32
IF-MIB ifInUcastPkts 1.3.6.1.2.1.2.2.1.11 o Counter32
IF-MIB ifInNUcastPkts 1.3.6.1.2.1.2.2.1.12 o Counter32
IF-MIB ifInDiscards 1.3.6.1.2.1.2.2.1.13 o Counter32
IF-MIB ifInErrors 1.3.6.1.2.1.2.2.1.14 o Counter32
IF-MIB ifInUnknownProtos 1.3.6.1.2.1.2.2.1.15 o Counter32
IF-MIB ifOutOctets 1.3.6.1.2.1.2.2.1.16 o Counter32
IF-MIB ifOutUcastPkts 1.3.6.1.2.1.2.2.1.17 o Counter32
IF-MIB ifOutNUcastPkts 1.3.6.1.2.1.2.2.1.18 o Counter32
IF-MIB ifOutDiscards 1.3.6.1.2.1.2.2.1.19 o Counter32
IF-MIB ifOutErrors 1.3.6.1.2.1.2.2.1.20 o Counter32
IF-MIB ifOutQLen 1.3.6.1.2.1.2.2.1.21 o Gauge32
IF-MIB ifSpecific 1.3.6.1.2.1.2.2.1.22 o OBJECT-IDENTIFIER
IF-MIB ifMIB 1.3.6.1.2.1.31 - -
IF-MIB ifMIBObjects 1.3.6.1.2.1.31.1 - -
IF-MIB ifXTable 1.3.6.1.2.1.31.1.1 - -
IF-MIB ifXEntry 1.3.6.1.2.1.31.1.1.1 - -
IF-MIB ifName 1.3.6.1.2.1.31.1.1.1.1 o DisplayString
IF-MIB ifInMulticastPkts 1.3.6.1.2.1.31.1.1.1.2 o Counter32
IF-MIB ifInBroadcastPkts 1.3.6.1.2.1.31.1.1.1.3 o Counter32
IF-MIB ifOutMulticastPkts 1.3.6.1.2.1.31.1.1.1.4 o Counter32
IF-MIB ifOutBroadcastPkts 1.3.6.1.2.1.31.1.1.1.5 o Counter32
IF-MIB ifHCInOctets 1.3.6.1.2.1.31.1.1.1.6 o Counter64
IF-MIB ifHCInUcastPkts 1.3.6.1.2.1.31.1.1.1.7 o Counter64
IF-MIB ifHCInMulticastPkts 1.3.6.1.2.1.31.1.1.1.8 o Counter64
IF-MIB ifHCInBroadcastPkts 1.3.6.1.2.1.31.1.1.1.9 o Counter64
IF-MIB ifHCOutOctets 1.3.6.1.2.1.31.1.1.1.10 o Counter64
IF-MIB ifHCOutUcastPkts 1.3.6.1.2.1.31.1.1.1.11 o Counter64
IF-MIB ifHCOutMulticastPkts 1.3.6.1.2.1.31.1.1.1.12 o Counter64
IF-MIB ifHCOutBroadcastPkts 1.3.6.1.2.1.31.1.1.1.13 o Counter64
IF-MIB ifLinkUpDownTrapEnable 1.3.6.1.2.1.31.1.1.1.14 o ifLinkUpDownTrapEnable
IF-MIB ifHighSpeed 1.3.6.1.2.1.31.1.1.1.15 o Gauge32
IF-MIB ifPromiscuousMode 1.3.6.1.2.1.31.1.1.1.16 o TruthValue
IF-MIB ifConnectorPresent 1.3.6.1.2.1.31.1.1.1.17 o TruthValue
IF-MIB ifAlias 1.3.6.1.2.1.31.1.1.1.18 o DisplayString
IF-MIB ifCounterDiscontinuityTime 1.3.6.1.2.1.31.1.1.1.19 o TimeStamp
IF-MIB linkDown 1.3.6.1.6.3.1.1.5.3 n -
IF-MIB linkUp 1.3.6.1.6.3.1.1.5.4 n -
`

// builtinEnums are the enumerations of built-in syntaxes, for the labels
// in a trap's long output ("down(2)").
var builtinEnums = map[string]string{
	"ifAdminStatus":          "up(1) down(2) testing(3)",
	"ifOperStatus":           "up(1) down(2) testing(3) unknown(4) dormant(5) notPresent(6) lowerLayerDown(7)",
	"ifLinkUpDownTrapEnable": "enabled(1) disabled(2)",
	"TruthValue":             "true(1) false(2)",
}

// builtinHints are the DISPLAY-HINTs of the textual conventions every
// module uses, so that octet strings of these types print right even when
// the module defining the convention is not installed.
var builtinHints = map[string]string{
	"DisplayString":   "255a",
	"SnmpAdminString": "255t",
	"PhysAddress":     "1x:",
	"MacAddress":      "1x:",
	"DateAndTime":     "2d-1d-1d,1d:1d:1d.1d,1a1d:1d",
}

// addBuiltins fills m with the built-in nodes.
func (m *MIB) addBuiltins() {
	for _, line := range strings.Split(builtinNodes, "\n") {
		f := strings.Fields(line)
		if len(f) != 5 {
			continue
		}
		n := &Node{Module: f[0], Name: f[1], OID: f[2], Syntax: strings.ReplaceAll(f[4], "-", " ")}
		switch f[3] {
		case "o":
			n.Kind = KindObject
		case "n":
			n.Kind = KindNotification
		}
		if f[4] == "-" {
			n.Syntax = ""
		}
		if e, ok := builtinEnums[f[4]]; ok {
			n.Enum = parseEnumList(e)
		}
		n.Hint = builtinHints[f[4]]
		m.add(n, true)
	}
}

// parseEnumList parses "up(1) down(2)".
func parseEnumList(s string) map[int64]string {
	out := map[int64]string{}
	for _, item := range strings.Fields(s) {
		name, num, ok := strings.Cut(strings.TrimSuffix(item, ")"), "(")
		if !ok {
			continue
		}
		if v, err := strconv.ParseInt(num, 10, 64); err == nil {
			out[v] = name
		}
	}
	return out
}
