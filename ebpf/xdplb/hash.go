package xdplb

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// jhashInitval is JHASH_INITVAL of the kernel's include/linux/jhash.h.
const jhashInitval = 0xdeadbeef

// jhash9 is the kernel's jhash2 (Bob Jenkins' lookup3, include/linux/jhash.h)
// over exactly nine words, as flow_hash in xdplb.c computes it.
func jhash9(w *[9]uint32, seed uint32) uint32 {
	a := uint32(jhashInitval + 9<<2 + seed)
	b, c := a, a
	for i := 0; i < 6; i += 3 {
		a += w[i]
		b += w[i+1]
		c += w[i+2]
		a -= c
		a ^= bits.RotateLeft32(c, 4)
		c += b
		b -= a
		b ^= bits.RotateLeft32(a, 6)
		a += c
		c -= b
		c ^= bits.RotateLeft32(b, 8)
		b += a
		a -= c
		a ^= bits.RotateLeft32(c, 16)
		c += b
		b -= a
		b ^= bits.RotateLeft32(a, 19)
		a += c
		c -= b
		c ^= bits.RotateLeft32(b, 4)
		b += a
	}
	a += w[6]
	b += w[7]
	c += w[8]
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return c
}

// addrWords puts a's bytes into four words, each the big-endian value of
// four address bytes; an IPv4 address fills the first word only.
func addrWords(w []uint32, a netip.Addr) {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		w[0] = binary.BigEndian.Uint32(b[:])
		return
	}
	b := a.As16()
	for i := range 4 {
		w[i] = binary.BigEndian.Uint32(b[4*i:])
	}
}

// FlowHash returns the hash by which the program indexes a service's Maglev
// table (hash % len(table)) for a TCP flow from client to vip: the kernel's
// jhash2 with initval seed over nine words: the client address, the VIP
// (four words each: the big-endian values of four address bytes, IPv4 in
// the first word and the others zero) and clientPort<<16 | vipPort. A
// persistent service hashes the client address alone (the other five
// words zero). The words are defined on values, so nodes of either byte
// order agree; with the same seed and table, every node that becomes
// Master sends a flow to the same backend.
func FlowHash(client, vip netip.AddrPort, persistent bool, seed uint32) uint32 {
	var w [9]uint32
	addrWords(w[0:4], client.Addr())
	if !persistent {
		addrWords(w[4:8], vip.Addr())
		w[8] = uint32(client.Port())<<16 | uint32(vip.Port())
	}
	return jhash9(&w, seed)
}
