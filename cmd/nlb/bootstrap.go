package main

import (
	"fmt"
	"io"

	"github.com/nlb-dev/nlb/config"
)

// printStartupGrace adds the bootstrap rule (apiServerHealth.startupGrace)
// to --check's output.
func printStartupGrace(w io.Writer, h config.Health) error {
	if h.StartupGrace <= 0 {
		_, err := fmt.Fprintf(w, "  bootstrap: none (startupGrace 0s): failures count from the first check\n")
		return err
	}
	_, err := fmt.Fprintf(w, "  bootstrap: until the local API server's first passing check, failures are not counted "+
		"for up to %s after start (startupGrace); 401/403 answers count as up\n", h.StartupGrace)
	return err
}
