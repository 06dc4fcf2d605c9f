//go:build race

package lb

// raceBuild: the tests run with the race detector, whose shadow memory
// swamps memory figures.
const raceBuild = true
