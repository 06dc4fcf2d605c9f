package benchtool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzParsers feeds the same bytes to every parser: each returns a result
// or an error, and none panics, whatever a tool printed.
func FuzzParsers(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.*")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseWrk(string(b))
		_, _ = ParseIperf3(b)
		_, _ = ParseVegetaReport(b)
		_, _ = ParseVegetaCSV(strings.NewReader(string(b)), time.Millisecond)
		_, _ = ParseStatus(b)
		_, _ = ParseStraceSummary(string(b))
		_, _ = ParseProcNetTCP(b)
		_, _, _ = ParseProcStat(b)
		_, _ = ParseStatCPU(b)
	})
}
