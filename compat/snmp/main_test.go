package snmp

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// TestMain also hosts two tools that must not run as tests: -snmp.capture
// regenerates the packet corpus, and with RECON_SNMP_TRAPGEN set the test
// binary is the benchmark's trap generator (a separate process, so that
// recon and snmptrapd face the same sender).
func TestMain(m *testing.M) {
	flag.Parse()
	if *capture {
		if err := capturePackets(); err != nil {
			fmt.Fprintln(os.Stderr, "capture:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if spec := os.Getenv(genEnv); spec != "" {
		if err := runTrapGenerator(spec); err != nil {
			fmt.Fprintln(os.Stderr, "generator:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
