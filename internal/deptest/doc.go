// Package deptest checks a module's packages against import rules, in the
// manner of tailscale's tstest/deptest: each rule names a package (or a
// subtree), what it may import directly besides the standard library, and
// what it must not depend on, directly or through anything it imports.
//
// The rules themselves live in ARCHITECTURE.md's "What may import what"
// table; ParseTable (rules_test.go) reads them from there, so the document and the test
// cannot drift apart. Everything is in the package's test files: the
// checker has no user but TestImportRules.
package deptest
