// Package vrrp implements the Virtual Router Redundancy Protocol, version 2
// as described in RFC 3768 and version 3 as described in RFC 5798 and its
// successor RFC 9568, in a form that interoperates with keepalived.
//
// The package is pure: it encodes and decodes advertisements
// ([Advertisement]), checks received packets against an instance's
// expectations ([Filter]), and runs the protocol state machine ([Machine])
// with time and packets as inputs and [Action] values as outputs.
// [Instance] drives a Machine over narrow seams (a [Conn] for advertisements
// and [Effects] funcs for addresses and announcements); the Linux
// implementations of those seams live in the subpackages socket, announce and
// vip.
//
// Terminology follows RFC 3768 (Master/Backup); RFC 9568 renames Master to
// Active without changing the behaviour.
package vrrp
