package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Every YAML example in README.md and in the -h texts must be accepted by
// the --check of the command that reads it (issue 10 item 10). A fragment
// that is deliberately not a whole configuration is marked with
// notAConfig on the line before its fence; nothing is skipped silently.

// notAConfig marks a README YAML fence that no loader should read.
const notAConfig = "<!-- not-a-config -->"

// yamlExample is one YAML example and where it was found.
type yamlExample struct {
	where string
	text  string
}

// readmeYAML returns the ```yaml fences of a Markdown document, with
// whether each is marked notAConfig.
func readmeYAML(t *testing.T, md string) (examples []yamlExample, marked int) {
	t.Helper()
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		fence := strings.TrimSpace(lines[i])
		if fence != "```yaml" && fence != "```yml" {
			continue
		}
		start := i
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		if i == len(lines) {
			t.Fatalf("README.md:%d: unterminated fence", start+1)
		}
		prev := ""
		for j := start - 1; j >= 0; j-- {
			if s := strings.TrimSpace(lines[j]); s != "" {
				prev = s
				break
			}
		}
		if prev == notAConfig {
			marked++
			continue
		}
		examples = append(examples, yamlExample{where: "README.md:" + strconv.Itoa(start+1), text: strings.Join(body, "\n") + "\n"})
	}
	return examples, marked
}

// usageKey starts an indented YAML mapping in a usage text.
var usageKey = regexp.MustCompile(`^  [A-Za-z][A-Za-z0-9.]*: `)

// usageYAML returns the YAML examples of a usage text: the paragraphs
// (between blank lines) indented by two spaces whose first line is a
// "key: value" line, unindented.
func usageYAML(cmd, usage string) []yamlExample {
	var out []yamlExample
	for i, para := range strings.Split(usage, "\n\n") {
		lines := strings.Split(strings.Trim(para, "\n"), "\n")
		if !usageKey.MatchString(lines[0]) {
			continue
		}
		var b strings.Builder
		ok := true
		for _, l := range lines {
			if !strings.HasPrefix(l, "  ") {
				ok = false
				break
			}
			b.WriteString(l[2:] + "\n")
		}
		if ok {
			out = append(out, yamlExample{where: "nlb " + cmd + " -h, paragraph " + strconv.Itoa(i+1), text: b.String()})
		}
	}
	return out
}

// alternative matches a "key: value  # or other" line: the comment offers
// another value, which must be accepted too.
var alternative = regexp.MustCompile(`(?m)^(\s*[A-Za-z][A-Za-z0-9]*:\s+)([^\s#]+)(\s+#\s*or\s+)([A-Za-z0-9._-]+)`)

// variants returns ex and one copy per "# or other" alternative in it.
func variants(ex yamlExample) []yamlExample {
	out := []yamlExample{ex}
	for _, m := range alternative.FindAllStringSubmatchIndex(ex.text, -1) {
		v := ex.text[:m[4]] + ex.text[m[8]:m[9]] + ex.text[m[5]:]
		out = append(out, yamlExample{where: ex.where + " (with " + strings.TrimSpace(ex.text[m[2]:m[3]]) + " " + ex.text[m[8]:m[9]] + ")", text: v})
	}
	return out
}

// checkCommands returns the --check runs that must accept the YAML: a k0s
// configuration (ClusterConfig or its controlPlaneLoadBalancing section)
// goes to nlb vrrp and nlb controller, anything else to nlb proxy.
func checkCommands(text string) [][]string {
	if strings.Contains(text, "kind: ClusterConfig") || strings.Contains(text, "controlPlaneLoadBalancing") ||
		strings.Contains(text, "vrrpInstances") {
		return [][]string{{"vrrp", "--check"}, {"controller", "--check"}}
	}
	return [][]string{{"proxy", "--check"}}
}

// TestDocsYAMLExamples: every YAML example of README.md and of every
// command's -h text (and every "# or X" alternative a comment offers) is
// accepted by --check of the command that reads it.
func TestDocsYAMLExamples(t *testing.T) {
	md, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	examples, marked := readmeYAML(t, string(md))
	if len(examples) == 0 {
		t.Fatal("README.md: no ```yaml example found")
	}
	t.Logf("README.md: %d YAML examples, %d marked %s", len(examples), marked, notAConfig)
	fromUsage := 0
	for name := range commands() {
		var out, errb bytes.Buffer
		if err := run(context.Background(), []string{name, "-h"}, &out, &errb); err == nil || errb.Len() != 0 {
			t.Fatalf("nlb %s -h: %v %s", name, err, errb.String())
		}
		u := usageYAML(name, out.String())
		fromUsage += len(u)
		examples = append(examples, u...)
	}
	if fromUsage == 0 {
		t.Fatal("no YAML example found in any -h text (nlb proxy -h has one)")
	}
	dir := t.TempDir()
	n := 0
	for _, ex := range examples {
		for _, v := range variants(ex) {
			n++
			path := filepath.Join(dir, "example-"+strconv.Itoa(n)+".yaml")
			if err := os.WriteFile(path, []byte(v.text), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range checkCommands(v.text) {
				args := append(append([]string{}, cmd...), "--config", path)
				var out, errb bytes.Buffer
				if err := run(context.Background(), args, &out, &errb); err != nil {
					t.Errorf("%s: nlb %s rejects it: %v\n%s%s", v.where, strings.Join(cmd, " "), err, errb.String(), v.text)
				}
			}
		}
	}
}

// TestDocsYAMLExtraction: the extraction finds fenced and indented
// examples, honours the marker, and offers the alternatives of comments,
// so that TestDocsYAMLExamples cannot pass by finding nothing.
func TestDocsYAMLExtraction(t *testing.T) {
	md := "text\n\n```yaml\na: 1\n```\n\n" + notAConfig + "\n```yaml\npartial: {\n```\n\n```sh\nnot: yaml\n```\n"
	ex, marked := readmeYAML(t, md)
	if len(ex) != 1 || ex[0].text != "a: 1\n" || ex[0].where != "README.md:3" || marked != 1 {
		t.Errorf("readmeYAML = %+v, %d marked", ex, marked)
	}
	usage := "Usage: nlb x\n\nsome file:\n\n  listen: [\":1\"]\n  balance: a   # or b\n  hc:\n    type: tcp\n\n  - a list item: not YAML config\n\nFlags:\n"
	u := usageYAML("x", usage)
	if len(u) != 1 || u[0].text != "listen: [\":1\"]\nbalance: a   # or b\nhc:\n  type: tcp\n" {
		t.Fatalf("usageYAML = %+v", u)
	}
	v := variants(u[0])
	if len(v) != 2 || !strings.Contains(v[1].text, "balance: b   # or b\n") {
		t.Errorf("variants = %+v", v)
	}
	if got := checkCommands("kind: ClusterConfig\n"); len(got) != 2 || got[0][0] != "vrrp" {
		t.Errorf("checkCommands(ClusterConfig) = %q", got)
	}
}
