package config

import (
	"fmt"
	"strconv"
	"strings"
)

// FieldError is one problem with one field. Path names the field the way
// Kubernetes field paths do ("spec.network.controlPlaneLoadBalancing.keepalived.vrrpInstances[1].authPass"),
// relative to the document the user gave (see the package doc).
type FieldError struct {
	// Path is the field path; empty for a problem with the whole document.
	Path string
	// Message says what is wrong, without the path.
	Message string
	// File names the file Path is in when a configuration comes from
	// more than one (LoadWithOverlay); empty otherwise.
	File string
}

// Error returns "path: message", or "file: path: message" with a File.
func (e *FieldError) Error() string {
	s := e.Message
	if e.Path != "" {
		s = e.Path + ": " + s
	}
	if e.File != "" {
		s = e.File + ": " + s
	}
	return s
}

// ValidationError lists every problem found in a configuration. Load and
// Validate return it; errors.As with a *FieldError target finds the first
// problem.
type ValidationError struct {
	// Problems are in document order: decoding problems first, then
	// field rules, then cross-field rules; at most the first 1000.
	Problems []*FieldError
	// Omitted counts the problems found beyond those kept in Problems.
	Omitted int
}

// MaxReportedProblems is how many problems ValidationError.Error lists;
// the rest are counted in a last line. A file with thousands of broken
// instances then prints a screenful, not one line per problem (Problems
// keeps them all).
const MaxReportedProblems = 20

// Error returns one "config: path: message" line per problem, at most
// MaxReportedProblems of them, then "config: ... and N more problems" if
// there are more.
func (e *ValidationError) Error() string {
	var b strings.Builder
	shown := min(len(e.Problems), MaxReportedProblems)
	for i, p := range e.Problems[:shown] {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("config: ")
		b.WriteString(p.Error())
	}
	if more := len(e.Problems) - shown + e.Omitted; more > 0 {
		if shown > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "config: ... and %d more problems", more)
	}
	return b.String()
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// Paths returns the path of every problem, in order; handy in tests and
// for tools that highlight fields.
func (e *ValidationError) Paths() []string {
	paths := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		paths[i] = p.Path
	}
	return paths
}

// maxKeptProblems bounds the problems kept in memory: a 1 MiB file can
// hold some 175,000 broken list items. The rest are only counted.
const maxKeptProblems = 1000

// problems collects FieldErrors, the first maxKeptProblems of them.
type problems struct {
	list    []*FieldError
	omitted int
}

func (p *problems) add(path, msg string) {
	if len(p.list) >= maxKeptProblems {
		p.omitted++
		return
	}
	p.list = append(p.list, &FieldError{Path: path, Message: msg})
}

// addIn adds a problem at path in file.
func (p *problems) addIn(file, path, msg string) {
	if len(p.list) >= maxKeptProblems {
		p.omitted++
		return
	}
	p.list = append(p.list, &FieldError{File: file, Path: path, Message: msg})
}

// count is the number of problems found, kept or not.
func (p *problems) count() int { return len(p.list) + p.omitted }

func (p *problems) err() error {
	if p.count() == 0 {
		return nil
	}
	return &ValidationError{Problems: p.list, Omitted: p.omitted}
}

// child returns path.name, or name at the root.
func child(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// index returns path[i].
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}
