package benchtool

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// StraceArgs is `strace -c -f -p PID -o FILE`: a count of the system calls
// of every thread of a running process (and of threads it starts), written
// to file when strace detaches (SIGINT).
func StraceArgs(pid int, file string) []string {
	return []string{"strace", "-c", "-f", "-p", strconv.Itoa(pid), "-o", file}
}

// StraceSummary is strace -c's table.
type StraceSummary struct {
	Calls   int64            // the total line's calls
	Errors  int64            // the total line's errors
	ByName  map[string]int64 // calls per system call
	Seconds float64          // system time strace measured, all calls
}

// ParseStraceSummary parses strace -c's table:
//
//	% time     seconds  usecs/call     calls    errors syscall
//	------ ----------- ----------- --------- --------- ----------------
//	 66.55    0.110271           2     47110           writev
//	...
//	100.00    0.165696           1    100174         7 total
//
// The errors column is empty where a call never failed.
func ParseStraceSummary(out string) (StraceSummary, error) {
	s := StraceSummary{ByName: map[string]int64{}}
	header, total := false, false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 0 || strings.HasPrefix(f[0], "---"):
			continue
		case f[0] == "%":
			header = true
			continue
		case !header:
			continue // "strace: Process N attached" and the like
		}
		if len(f) != 5 && len(f) != 6 {
			return s, fmt.Errorf("strace -c: unexpected line %q", sc.Text())
		}
		secs, err1 := strconv.ParseFloat(f[1], 64)
		calls, err2 := strconv.ParseInt(f[3], 10, 64)
		var errs int64
		var err3 error
		if len(f) == 6 {
			errs, err3 = strconv.ParseInt(f[4], 10, 64)
		}
		if err := errors.Join(err1, err2, err3); err != nil {
			return s, fmt.Errorf("strace -c: line %q: %w", sc.Text(), err)
		}
		name := f[len(f)-1]
		if name == "total" {
			s.Calls, s.Errors, s.Seconds, total = calls, errs, secs, true
			continue
		}
		s.ByName[name] += calls
	}
	if !total {
		return s, errors.New("strace -c: no total line")
	}
	return s, nil
}
