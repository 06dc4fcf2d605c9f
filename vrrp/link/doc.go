// Package link holds the operating-system facts about the link a VRRP
// instance runs on: which link the configuration means (k0s's rules: the
// default-route interface, a MAC address, or a name), whether it has
// carrier, and which address advertisements are sent from.
//
// RFC 3768 §5.2.1 and RFC 9568 §5.1.1.1: the source of an advertisement is
// the primary IP address of the interface the packet is sent from. Package
// config takes the resolver as an interface (config.InterfaceResolver), so
// that config stays free of OS effects and is tested with fakes.
package link
