// Package snmp is recon's SNMP support: a trap receiver that replaces
// snmptrapd (v1, v2c, v3 USM with many users, informs acknowledged, OIDs
// translated with MIB files) and the "snmp" polling check type (get, walk,
// IF-MIB interface table, v1/v2c/v3, thresholds).
//
// Both use gosnmp for the protocol and gosmi's SMI parser for MIB files;
// the standard notifications and IF-MIB objects are built in, because
// Debian ships the IETF MIBs only in non-free.
package snmp
