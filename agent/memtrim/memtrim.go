// Package memtrim hands memory that only start-up needed back to the
// system, once, when an agent has settled.
//
// Two kinds of pages stay resident after start-up although a quiet agent
// never touches them again: garbage on the Go heap (config parsing,
// migrations, schema compilation) that a mostly idle process would not
// collect for minutes, and pages of the executable that only package
// initialisation ran or read (JSON Schema metaschemas, the MIB grammar,
// protobuf registries). The kernel maps the latter in 64 KiB windows
// around each fault, so after start-up most of the binary is resident.
// Paging the executable's read-only mappings out lets the steady state
// fault back in only the code it runs; the pages are clean and backed by
// the file, so nothing is lost and nothing is written.
package memtrim

import (
	"runtime/debug"
)

// Startup collects the heap, returns free pages to the OS and pages out
// the executable's read-only mappings. It returns how many mappings were
// paged out; an error means the kernel refused (the agent runs on, just
// larger).
func Startup() (int, error) {
	debug.FreeOSMemory()
	return pageOutExecutable()
}
