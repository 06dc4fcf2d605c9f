#!/usr/bin/env python3
"""extract.py PCAP: print the VRRP advertisements of a classic pcap
(Ethernet or Linux cooked) in the golden text format read by
packet_test.go: one block per distinct packet, fields "src", "dst", "ttl"
and "payload" (the IP payload, hex), blocks separated by blank lines."""
import struct
import sys
import ipaddress


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(end + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(end + "IIII", data[off:off + 16])
        off += 16
        frame = data[off:off + incl]
        off += incl
        if linktype == 1:  # Ethernet
            etype, l3 = struct.unpack(">H", frame[12:14])[0], frame[14:]
        elif linktype == 113:  # Linux cooked
            etype, l3 = struct.unpack(">H", frame[14:16])[0], frame[16:]
        else:
            sys.exit("unsupported linktype %d" % linktype)
        if etype == 0x0800 and l3[9] == 112:
            ihl = (l3[0] & 0xF) * 4
            total = struct.unpack(">H", l3[2:4])[0]
            yield (ipaddress.ip_address(l3[12:16]), ipaddress.ip_address(l3[16:20]),
                   l3[8], l3[ihl:total])
        elif etype == 0x86DD and l3[6] == 112:
            plen = struct.unpack(">H", l3[4:6])[0]
            yield (ipaddress.ip_address(l3[8:24]), ipaddress.ip_address(l3[24:40]),
                   l3[7], l3[40:40 + plen])


seen = set()
for src, dst, ttl, payload in packets(sys.argv[1]):
    key = (src, dst, ttl, payload)
    if key in seen:
        continue
    seen.add(key)
    if len(seen) > 1:
        print()
    print("src", src)
    print("dst", dst)
    print("ttl", ttl)
    print("payload", payload.hex())
