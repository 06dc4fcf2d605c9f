#!/bin/sh
# capture.sh: one-off capture of keepalived advertisements for the golden
# tests in ../../packet_test.go. Needs root, keepalived, tcpdump, python3.
# Usage: sudo sh capture.sh OUTDIR   (see README.md)
#
# For each configuration below it builds two throw-away network namespaces
# nlbcap-<pid>-a and nlbcap-<pid>-b joined by a veth pair (cap0
# 192.0.2.1/24 2001:db8::1/64 in -a, cap1 192.0.2.2/24 2001:db8::2/64 in
# -b, the unicast peer), runs keepalived on cap0 as MASTER (in -a) with
# its own pid files in a temp dir, captures with tcpdump on cap0 for a few
# seconds, stops keepalived with SIGTERM (so the priority-0 release advert is
# captured too), removes the namespace and extracts the VRRP payloads with
# extract.py. Host interfaces are never touched.
set -eu
out=$(cd "${1:?usage: capture.sh OUTDIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
ns=nlbcap-$$-a
peer=nlbcap-$$-b
tmp=$(mktemp -d)
cleanup() {
	ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || true
	ip netns del "$peer" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

lab() {
	ip netns add "$ns"
	ip netns add "$peer"
	for n in "$ns" "$peer"; do
		ip netns exec "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
		ip -n "$n" link set lo up
	done
	ip -n "$ns" link add cap0 type veth peer name cap1 netns "$peer"
	ip -n "$ns" addr add 192.0.2.1/24 dev cap0
	ip -n "$peer" addr add 192.0.2.2/24 dev cap1
	ip -n "$ns" addr add 2001:db8::1/64 dev cap0 nodad
	ip -n "$peer" addr add 2001:db8::2/64 dev cap1 nodad
	ip -n "$ns" link set cap0 up
	ip -n "$peer" link set cap1 up
	sleep 1
}

# run NAME: runs keepalived with $tmp/NAME.conf and writes OUTDIR/NAME.pcap.
run() {
	name=$1
	lab
	ip netns exec "$ns" tcpdump -q -n -i cap0 -w "$tmp/$name.pcap" 'ip proto 112 or ip6 proto 112' 2>/dev/null &
	tcpdump_pid=$!
	sleep 1
	ip netns exec "$ns" keepalived -n -l -D -P -f "$tmp/$name.conf" \
		-p "$tmp/$name.keepalived.pid" -r "$tmp/$name.vrrp.pid" >"$tmp/$name.log" 2>&1 &
	ka_pid=$!
	sleep 7 # BACKUP (init) for 3 intervals + skew, then MASTER
	kill -TERM "$ka_pid"
	wait "$ka_pid" || true
	sleep 1
	kill -INT "$tcpdump_pid"
	wait "$tcpdump_pid" || true
	cp "$tmp/$name.pcap" "$out/$name.pcap"
	cp "$tmp/$name.log" "$out/$name.log"
	ip netns pids "$ns" | xargs -r kill 2>/dev/null || true
	ip netns del "$ns"
	ip netns del "$peer"
}

conf() { # conf NAME VERSION INSTANCE-BODY
	cat >"$tmp/$1.conf" <<CONF
global_defs {
	router_id nlbcap
	vrrp_version $2
	script_user root
	enable_script_security
}
vrrp_instance VI_1 {
	state MASTER
	interface cap0
	virtual_router_id 51
	priority 150
$3
}
CONF
}

conf keepalived-v2-pass 2 '
	advert_int 1
	authentication {
		auth_type PASS
		auth_pass nlbpass1
	}
	virtual_ipaddress {
		192.0.2.100/24
		192.0.2.101/24
	}'
conf keepalived-v2-unicast 2 '
	advert_int 1
	unicast_src_ip 192.0.2.1
	unicast_peer {
		192.0.2.2
	}
	virtual_ipaddress {
		192.0.2.100/24
	}'
conf keepalived-v3-ipv4 3 '
	advert_int 0.5
	virtual_ipaddress {
		192.0.2.100/24
		192.0.2.101/24
		192.0.2.102/24
	}'
conf keepalived-v3-ipv4-unicast 3 '
	advert_int 1
	unicast_src_ip 192.0.2.1
	unicast_peer {
		192.0.2.2
	}
	virtual_ipaddress {
		192.0.2.100/24
	}'
conf keepalived-v3-ipv6 3 '
	advert_int 1
	virtual_ipaddress {
		2001:db8::100/64
		2001:db8::101/64
	}'
conf keepalived-v3-ipv6-linklocal 3 '
	advert_int 1
	virtual_ipaddress {
		fe80::51/64
		2001:db8::100/64
	}'

for c in keepalived-v2-pass keepalived-v2-unicast keepalived-v3-ipv4 \
	keepalived-v3-ipv4-unicast keepalived-v3-ipv6 keepalived-v3-ipv6-linklocal; do
	cp "$tmp/$c.conf" "$out/$c.conf"
	run "$c"
	python3 "$here/extract.py" "$out/$c.pcap" >"$out/$c.txt"
done
