#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Copyright (C) 2015-2019 Jason A. Donenfeld <Jason@zx2c4.com>. All Rights Reserved.
#
# The Linux kernel's WireGuard selftest, adapted to a userspace WireGuard
# implementation that is started empty, as wg-quick starts one
# (WG_QUICK_USERSPACE_IMPLEMENTATION), and configured with wg(8) alone.
#
# Origin: tools/testing/selftests/wireguard/netns.sh of the Linux kernel
# (github.com/torvalds/linux, commit
# 0584bf51c31583352648e78b032f1261084e46dd), GPL-2.0, which this adapted
# copy keeps: its licence and copyright lines above are the original's.
# It is a test script run as a separate program; nothing in PipeGuard
# links it.
#
# Usage, as root:
#   WG_SELFTEST_USERSPACE_IMPLEMENTATION=/path/to/pipeguard-go scripts/netns-selftest.sh
#   WG_SELFTEST_USERSPACE_IMPLEMENTATION=wireguard-go scripts/netns-selftest.sh
# It needs wg, ip, ping, iperf3, ncat, iptables, ss and mount. Go's
# cmd/headless-client/e2e TestKernelSelftest runs it against PipeGuard
# (and against Debian's wireguard-go, for comparison).
#
# How it is adapted. The body below the adaptation layer is the
# original's, line for line, except the lines marked "# Adapted:".
#
#  - Launcher. Where the original makes an interface with `ip link add
#    NAME type wireguard` in a namespace, the ip0/ip1/ip2 helpers run
#    "$WG_SELFTEST_USERSPACE_IMPLEMENTATION NAME" in that namespace
#    instead, as wg-quick runs a userspace implementation: it creates the
#    TUN interface and its UAPI socket, and returns once both exist. Its
#    UDP socket lives in that namespace, as the kernel's does, also when
#    the interface is then moved (`ip link set NAME netns ...`): the
#    original's topology (interfaces in ns1 and ns2, their sockets on ns0's
#    loopback) stays as it is. The implementation's processes carry
#    WG_SELFTEST_RUN=<pid> in their environment, and the cleanup ends
#    every process that does.
#  - UAPI sockets. A userspace implementation serves its interface at
#    /var/run/wireguard/NAME.sock, one directory for the whole machine,
#    so two interfaces named wg0 in two namespaces would collide. Here
#    each namespace k has its own runtime directory,
#    /run/wg-selftest-<pid>/k, and every command the n0/n1/n2 helpers run
#    in a namespace (wg among them, and the implementation when it
#    starts) sees it at /run/wireguard: `ip netns exec` gives each
#    command a mount namespace of its own, and the helpers bind-mount the
#    namespace's directory there first. When an interface moves to
#    another namespace, its socket file moves with it, so `wg` in the
#    namespace that holds the interface finds it, as it finds a kernel
#    interface there. An interface deleted with `ip link del` ends its
#    process; the helper waits for that.
#  - Checks are counted. The original stops at the first failure (set
#    -e). Here a failure is recorded and the test goes on: every command
#    the original would stop on (the same rules as set -e: an ERR trap)
#    counts as one failure, printed with its line; a check is a line of
#    the test (the main body, tests, configure_peers) that ran, counted
#    once however often it ran; it passed if it never failed. What a
#    userspace implementation cannot do at all is skipped, with the
#    reason printed. The summary line is "checks: P passed, F failed, S
#    skipped"; the exit status is 1 if any check failed.
#  - Skipped, each with its reason printed: the interface statistics
#    check (a TUN device counts the inner packets it carries, the
#    kernel's wireguard device the encrypted datagrams), the routing
#    loop's bound (the kernel module's transmit recursion guard sees its
#    own packet come back; a userspace implementation cannot), the ICMP
#    error for a packet no peer takes (the module sends it with
#    icmp_ndo_send; userspace implementations drop the packet), the
#    object-lifetime tracking at the end (read from the module's debug
#    messages in /dev/kmsg), and net.core.message_cost (it rate-limits
#    only the module's messages).
#  - A kernel without the dummy device (CONFIG_DUMMY) gets a veth pair
#    for the dummy0 of the reply-to-sender checks, both ends in ns1: an
#    interface other than the one the packets arrive on, which is what
#    the check needs.
#  - Shorter, when asked: WG_SELFTEST_IPERF_SECONDS (3, as the
#    original, unless set) is how long each iperf3 client runs; the Go
#    test sets 1 to fit in CI.
#  - Bounded: the waits for iperf3, ncat and an interface give up after
#    30 s (the original waits forever), and the two steps that set and
#    read 130,560 allowed IPs give up after WG_SELFTEST_SLOW_SECONDS
#    (120 unless set), so that an implementation that takes minutes
#    fails the check instead of holding the run.
# Adapted: no set -e; see "Checks are counted" above.
set +e

exec 3>&1
export LANG=C
export WG_HIDE_KEYS=never
netns0="wg-test-$$-0"
netns1="wg-test-$$-1"
netns2="wg-test-$$-2"

# ---- Adaptation layer (PipeGuard) ----------------------------------------

impl=${WG_SELFTEST_USERSPACE_IMPLEMENTATION:-}
if [[ -z $impl ]]; then
	echo "netns-selftest: set WG_SELFTEST_USERSPACE_IMPLEMENTATION to the command that creates an interface (pipeguard-go, wireguard-go)" >&2
	exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "netns-selftest: needs root" >&2
	exit 2
fi
iperf_seconds=${WG_SELFTEST_IPERF_SECONDS:-3}
slow_seconds=${WG_SELFTEST_SLOW_SECONDS:-120}
rtroot=/run/wg-selftest-$$
impl_log=${WG_SELFTEST_IMPL_LOG:-$rtroot/impl.log}
mkdir -p -m 0755 /run/wireguard "$rtroot"/{0,1,2}
export WG_SELFTEST_RUN=$$
# rtbind runs in each namespaced command's own mount namespace (made by
# ip netns exec): it puts the namespace's runtime directory at
# /run/wireguard, then becomes the command (the same process, so that $!
# names the command, as the original's waits need).
rtbind='mount --bind "$0" /run/wireguard && exec "$@"'

declare -A impl_pid       # "k/NAME" -> pid of the process serving NAME in namespace k
declare -A check_ran      # "function:line" -> 1 once the check ran
declare -A check_failed   # "function:line" -> failures
declare -A check_skipped  # "function:line" -> reason
declare -A cur_line cur_cmd # function -> the check line it runs now, and its command
failures=0

# nsindex NAME: the index (0, 1, 2) of one of the test's namespaces.
nsindex() {
	case $1 in
	"$netns0") echo 0 ;;
	"$netns1") echo 1 ;;
	"$netns2") echo 2 ;;
	*) return 1 ;;
	esac
}

# nsname K: the namespace of index K.
nsname() { local v="netns$1"; echo "${!v}"; }

# impl_pids: every process of the implementation started by this run.
impl_pids() {
	local p
	for p in /proc/[0-9]*; do
		{ tr '\0' '\n' < "$p/environ"; } 2>/dev/null | grep -qx "WG_SELFTEST_RUN=$$" && echo "${p#/proc/}"
	done
}

# impl_pid_of NAME: the process of this run whose last argument is NAME
# and that serves no other interface we know of.
impl_pid_of() {
	local p args known
	for p in $(impl_pids); do
		args=$({ tr '\0' '\n' < "/proc/$p/cmdline"; } 2>/dev/null | tail -n 1)
		[[ $args == "$1" ]] || continue
		known=0
		for k in "${!impl_pid[@]}"; do [[ ${impl_pid[$k]} == "$p" ]] && known=1; done
		((known)) || { echo "$p"; return 0; }
	done
	return 1
}

# wg_add K NAME: the userspace implementation makes interface NAME in
# namespace K, as `ip link add NAME type wireguard` makes a kernel one.
wg_add() {
	local k=$1 name=$2 ns pid
	ns=$(nsname "$k")
	if ! ip netns exec "$ns" /bin/sh -c "$rtbind" "$rtroot/$k" "$impl" "$name" >>"$impl_log" 2>&1; then
		echo "netns-selftest: $impl $name in $ns failed (see $impl_log)" >&3
		return 1
	fi
	pid=$(impl_pid_of "$name") && impl_pid["$k/$name"]=$pid
	return 0
}

# wg_moved K NAME TARGET: after `ip link set NAME netns TARGET` in
# namespace K, the UAPI socket follows the interface.
wg_moved() {
	local k=$1 name=$2 t
	t=$(nsindex "$3") || return 0
	[[ -n ${impl_pid["$k/$name"]} ]] || return 0
	mv -f "$rtroot/$k/$name.sock" "$rtroot/$t/$name.sock" 2>/dev/null
	impl_pid["$t/$name"]=${impl_pid["$k/$name"]}
	unset 'impl_pid[$k/$name]'
}

# wg_deleted K NAME: after `ip link del NAME` in namespace K, wait (up
# to 10 s) for the process that served it to end, and forget its socket.
wg_deleted() {
	local k=$1 name=$2 pid i
	pid=${impl_pid["$k/$name"]}
	[[ -n $pid ]] || return 0
	for ((i = 0; i < 100; ++i)); do
		[[ -d /proc/$pid ]] || break
		command sleep 0.1
	done
	rm -f "$rtroot/$k/$name.sock"
	unset 'impl_pid[$k/$name]'
}

# ipk K ARGS: `ip -n <namespace K> ARGS`, with the interfaces of type
# wireguard made by the userspace implementation (see the header).
ipk() {
	local k=$1 ns name target
	shift
	ns=$(nsname "$k")
	if [[ $1 == link && $2 == add && ${*: -2:1} == type && ${*: -1} == wireguard ]]; then
		name=$3
		[[ $name == dev ]] && name=$4
		wg_add "$k" "$name"
		return
	fi
	if [[ $1 == link && $2 == set && " $* " == *" netns "* ]]; then
		local a=("$@") i
		for ((i = 2; i < ${#a[@]}; ++i)); do
			case ${a[i]} in
			netns) target=${a[i + 1]}; ((++i)) ;;
			dev) name=${a[i + 1]}; ((++i)) ;;
			*) [[ -z $name ]] && name=${a[i]} ;;
			esac
		done
		ip -n "$ns" "$@" || return
		wg_moved "$k" "$name" "$target"
		return 0
	fi
	# Adapted: a kernel without the dummy device (CONFIG_DUMMY) gets a
	# veth pair instead, both ends in the namespace: an interface of its
	# own for an address, which is what the test needs of it.
	if [[ $1 == link && $2 == add && ${*: -2:1} == type && ${*: -1} == dummy ]]; then
		ip -n "$ns" "$@" 2>/dev/null && return 0
		ip -n "$ns" link add "$3" type veth peer name "${3:0:11}peer" && ip -n "$ns" link set "${3:0:11}peer" up
		return
	fi
	if [[ $1 == link && ($2 == del || $2 == delete) ]]; then
		name=$3
		[[ $name == dev ]] && name=$4
		ip -n "$ns" "$@" || return
		wg_deleted "$k" "$name"
		return 0
	fi
	ip -n "$ns" "$@"
}

# The functions whose lines are the test's checks; the others are
# helpers, whose failures count where they were called from.
is_check_frame() { [[ $1 == main || $1 == tests || $1 == configure_peers ]]; }

# on_debug runs before each command (set -T: in functions too) and
# notes, for the check frames, the line and command that run: an ERR
# that comes after a helper returned reports the caller's line and
# command, not the helper's last ones.
on_debug() {
	local fn=${FUNCNAME[1]}
	is_check_frame "$fn" || return 0
	check_ran["$fn:$1"]=1
	# The DEBUG trap also runs for the ERR trap's own command, on the
	# same line, with a stale BASH_COMMAND: keep a line's first command.
	[[ ${cur_line[$fn]} == "$1" ]] && return 0
	cur_line["$fn"]=$1
	cur_cmd["$fn"]=$2
}

on_err() {
	local fn=${FUNCNAME[1]} line cmd
	is_check_frame "$fn" || return 0
	line=${cur_line[$fn]} cmd=${cur_cmd[$fn]}
	# A call of tests or configure_peers that failed: its own lines
	# were counted.
	[[ $cmd == tests || $cmd == configure_peers ]] && return 0
	((++failures))
	check_failed["$fn:$line"]=$((${check_failed["$fn:$line"]:-0} + 1))
	printf '\x1b[31m\x1b[1m[-] FAIL line %s (%s): %s\x1b[0m\n' "$line" "$fn" "$cmd" >&3
	echo "    at $(date +%H:%M:%S.%3N)" >&3
}

# skip REASON: the check on the next line is one a userspace
# implementation cannot do at all; it is counted as skipped.
skip() {
	check_skipped["${FUNCNAME[1]}:${BASH_LINENO[0]}"]=$1
	printf '\x1b[33m\x1b[1m[~] SKIP line %s: %s\x1b[0m\n' "${BASH_LINENO[0]}" "$1" >&3
}

summary() {
	local k ran=0 failed=0 skipped=${#check_skipped[@]}
	for k in "${!check_ran[@]}"; do
		[[ -n ${check_skipped[$k]} ]] && continue
		((++ran))
		[[ -n ${check_failed[$k]} ]] && ((++failed))
	done
	echo "checks: $((ran - failed)) passed, $failed failed, $skipped skipped ($failures failures in all; implementation: $impl)" >&3
	((failed == 0))
}

# ---- The test (the original's, adapted where marked) -----------------------

pretty() { echo -e "\x1b[32m\x1b[1m[+] ${1:+NS$1: }${2}\x1b[0m" >&3; }
pp() { pretty "" "$*"; "$@"; }
maybe_exec() { if [[ $BASHPID -eq $$ ]]; then "$@"; else exec "$@"; fi; }
# Adapted: each command sees its namespace's runtime directory (rtbind).
n0() { pretty 0 "$*"; maybe_exec ip netns exec $netns0 /bin/sh -c "$rtbind" "$rtroot/0" "$@"; }
n1() { pretty 1 "$*"; maybe_exec ip netns exec $netns1 /bin/sh -c "$rtbind" "$rtroot/1" "$@"; }
n2() { pretty 2 "$*"; maybe_exec ip netns exec $netns2 /bin/sh -c "$rtbind" "$rtroot/2" "$@"; }
# Adapted: interfaces of type wireguard are the implementation's (ipk).
ip0() { pretty 0 "ip $*"; ipk 0 "$@"; }
ip1() { pretty 1 "ip $*"; ipk 1 "$@"; }
ip2() { pretty 2 "ip $*"; ipk 2 "$@"; }
# Adapted: read -t waits only on a terminal or an open pipe; stdin may be
# /dev/null here.
sleep() { command sleep "$1"; }
# Adapted: the waits give up after 30 s.
waitiperf() { pretty "${1//*-}" "wait for iperf:${3:-5201} pid $2"; local i; for ((i = 0; i < 300; ++i)); do [[ $(ss -N "$1" -tlpH "sport = ${3:-5201}") == *\"iperf3\",pid=$2,fd=* ]] && return 0; sleep 0.1; done; return 1; }
waitncatudp() { pretty "${1//*-}" "wait for udp:1111 pid $2"; local i; for ((i = 0; i < 300; ++i)); do [[ $(ss -N "$1" -ulpH 'sport = 1111') == *\"ncat\",pid=$2,fd=* ]] && return 0; sleep 0.1; done; return 1; }
waitiface() { pretty "${1//*-}" "wait for $2 to come up"; ip netns exec "$1" bash -c "for ((i = 0; i < 300; ++i)); do [[ \$(< \"/sys/class/net/$2/operstate\") == up ]] && exit 0; sleep 0.1; done; exit 1"; }

# Adapted: the cleanup prints the summary, ends the implementation's
# processes and removes the runtime directories; its exit status is the
# test's.
cleanup() {
	set +e
	trap - ERR DEBUG
	local ok=1
	summary || ok=0
	exec 2>/dev/null
	ip0 link del dev wg0
	ip0 link del dev wg1
	ip1 link del dev wg0
	ip1 link del dev wg1
	ip2 link del dev wg0
	ip2 link del dev wg1
	local to_kill="$(ip netns pids $netns0) $(ip netns pids $netns1) $(ip netns pids $netns2) $(impl_pids)"
	[[ -n ${to_kill// } ]] && kill $to_kill
	pp ip netns del $netns1
	pp ip netns del $netns2
	pp ip netns del $netns0
	rm -rf "$rtroot"
	((ok)) && exit 0
	exit 1
}

trap cleanup EXIT
set -E -T
trap 'on_debug $LINENO "$BASH_COMMAND"' DEBUG
trap 'on_err' ERR
# Adapted: net.core.message_cost only rate-limits the kernel module's
# messages; left alone.
skip "net.core.message_cost rate-limits the kernel module's messages only"
# orig_message_cost="$(< /proc/sys/net/core/message_cost)"
# printf 0 > /proc/sys/net/core/message_cost


ip netns del $netns0 2>/dev/null || true
ip netns del $netns1 2>/dev/null || true
ip netns del $netns2 2>/dev/null || true
pp ip netns add $netns0
pp ip netns add $netns1
pp ip netns add $netns2
ip0 link set up dev lo

ip0 link add dev wg0 type wireguard
ip0 link set wg0 netns $netns1
ip0 link add dev wg0 type wireguard
ip0 link set wg0 netns $netns2
key1="$(pp wg genkey)"
key2="$(pp wg genkey)"
key3="$(pp wg genkey)"
key4="$(pp wg genkey)"
pub1="$(pp wg pubkey <<<"$key1")"
pub2="$(pp wg pubkey <<<"$key2")"
pub3="$(pp wg pubkey <<<"$key3")"
pub4="$(pp wg pubkey <<<"$key4")"
psk="$(pp wg genpsk)"
[[ -n $key1 && -n $key2 && -n $psk ]]

configure_peers() {
	ip1 addr add 192.168.241.1/24 dev wg0
	ip1 addr add fd00::1/112 dev wg0

	ip2 addr add 192.168.241.2/24 dev wg0
	ip2 addr add fd00::2/112 dev wg0

	n1 wg set wg0 \
		private-key <(echo "$key1") \
		listen-port 1 \
		peer "$pub2" \
			preshared-key <(echo "$psk") \
			allowed-ips 192.168.241.2/32,fd00::2/128
	n2 wg set wg0 \
		private-key <(echo "$key2") \
		listen-port 2 \
		peer "$pub1" \
			preshared-key <(echo "$psk") \
			allowed-ips 192.168.241.1/32,fd00::1/128

	ip1 link set up dev wg0
	ip2 link set up dev wg0
}
configure_peers

tests() {
	# Adapted: every iperf3 client runs $iperf_seconds (3 in the original).
	# Ping over IPv4
	n2 ping -c 10 -f -W 1 192.168.241.1
	n1 ping -c 10 -f -W 1 192.168.241.2

	# Ping over IPv6
	n2 ping6 -c 10 -f -W 1 fd00::1
	n1 ping6 -c 10 -f -W 1 fd00::2

	# TCP over IPv4
	n2 iperf3 -s -1 -B 192.168.241.2 &
	waitiperf $netns2 $!
	n1 iperf3 -Z -t $iperf_seconds -c 192.168.241.2

	# TCP over IPv6
	n1 iperf3 -s -1 -B fd00::1 &
	waitiperf $netns1 $!
	n2 iperf3 -Z -t $iperf_seconds -c fd00::1

	# UDP over IPv4
	n1 iperf3 -s -1 -B 192.168.241.1 &
	waitiperf $netns1 $!
	n2 iperf3 -Z -t $iperf_seconds -b 0 -u -c 192.168.241.1

	# UDP over IPv6
	n2 iperf3 -s -1 -B fd00::2 &
	waitiperf $netns2 $!
	n1 iperf3 -Z -t $iperf_seconds -b 0 -u -c fd00::2

	# TCP over IPv4, in parallel
	for max in 4 5 50; do
		local pids=( )
		for ((i=0; i < max; ++i)) do
			n2 iperf3 -p $(( 5200 + i )) -s -1 -B 192.168.241.2 &
			pids+=( $! ); waitiperf $netns2 $! $(( 5200 + i ))
		done
		for ((i=0; i < max; ++i)) do
			n1 iperf3 -Z -t $iperf_seconds -p $(( 5200 + i )) -c 192.168.241.2 &
		done
		wait "${pids[@]}"
	done
}

[[ $(ip1 link show dev wg0) =~ mtu\ ([0-9]+) ]] && orig_mtu="${BASH_REMATCH[1]}"
big_mtu=$(( 34816 - 1500 + $orig_mtu ))

# Test using IPv4 as outer transport
n1 wg set wg0 peer "$pub2" endpoint 127.0.0.1:2
n2 wg set wg0 peer "$pub1" endpoint 127.0.0.1:1
# Before calling tests, we first make sure that the stats counters and timestamper are working
n2 ping -c 10 -f -W 1 192.168.241.1
# Adapted: a TUN device's statistics count the inner packets it carries,
# a kernel wireguard device's the encrypted datagrams.
skip "interface statistics: a TUN device counts inner packets, the kernel module encrypted datagrams"
# { read _; read _; read _; read rx_bytes _; read _; read tx_bytes _; } < <(ip2 -stats link show dev wg0)
# (( rx_bytes == 1372 && (tx_bytes == 1428 || tx_bytes == 1460) ))
skip "interface statistics: a TUN device counts inner packets, the kernel module encrypted datagrams"
# { read _; read _; read _; read rx_bytes _; read _; read tx_bytes _; } < <(ip1 -stats link show dev wg0)
# (( tx_bytes == 1372 && (rx_bytes == 1428 || rx_bytes == 1460) ))
read _ rx_bytes tx_bytes < <(n2 wg show wg0 transfer)
(( rx_bytes == 1372 && (tx_bytes == 1428 || tx_bytes == 1460) ))
read _ rx_bytes tx_bytes < <(n1 wg show wg0 transfer)
(( tx_bytes == 1372 && (rx_bytes == 1428 || rx_bytes == 1460) ))
read _ timestamp < <(n1 wg show wg0 latest-handshakes)
(( timestamp != 0 ))

tests
ip1 link set wg0 mtu $big_mtu
ip2 link set wg0 mtu $big_mtu
tests

ip1 link set wg0 mtu $orig_mtu
ip2 link set wg0 mtu $orig_mtu

# Test using IPv6 as outer transport
n1 wg set wg0 peer "$pub2" endpoint [::1]:2
n2 wg set wg0 peer "$pub1" endpoint [::1]:1
tests
ip1 link set wg0 mtu $big_mtu
ip2 link set wg0 mtu $big_mtu
tests

# Test that route MTUs work with the padding
ip1 link set wg0 mtu 1300
ip2 link set wg0 mtu 1300
n1 wg set wg0 peer "$pub2" endpoint 127.0.0.1:2
n2 wg set wg0 peer "$pub1" endpoint 127.0.0.1:1
n0 iptables -A INPUT -m length --length 1360 -j DROP
n1 ip route add 192.168.241.2/32 dev wg0 mtu 1299
n2 ip route add 192.168.241.1/32 dev wg0 mtu 1299
n2 ping -c 1 -W 1 -s 1269 192.168.241.1
n2 ip route delete 192.168.241.1/32 dev wg0 mtu 1299
n1 ip route delete 192.168.241.2/32 dev wg0 mtu 1299
n0 iptables -F INPUT

ip1 link set wg0 mtu $orig_mtu
ip2 link set wg0 mtu $orig_mtu

# Test using IPv4 that roaming works
ip0 -4 addr del 127.0.0.1/8 dev lo
ip0 -4 addr add 127.212.121.99/8 dev lo
n1 wg set wg0 listen-port 9999
n1 wg set wg0 peer "$pub2" endpoint 127.0.0.1:2
n1 ping6 -W 1 -c 1 fd00::2
[[ $(n2 wg show wg0 endpoints) == "$pub1	127.212.121.99:9999" ]]

# Test using IPv6 that roaming works
n1 wg set wg0 listen-port 9998
n1 wg set wg0 peer "$pub2" endpoint [::1]:2
n1 ping -W 1 -c 1 192.168.241.2
[[ $(n2 wg show wg0 endpoints) == "$pub1	[::1]:9998" ]]

# Test that crypto-RP filter works
n1 wg set wg0 peer "$pub2" allowed-ips 192.168.241.0/24
exec 4< <(n1 ncat -l -u -p 1111)
ncat_pid=$!
waitncatudp $netns1 $ncat_pid
n2 ncat -u 192.168.241.1 1111 <<<"X"
read -r -N 1 -t 1 out <&4 && [[ $out == "X" ]]
kill $ncat_pid
more_specific_key="$(pp wg genkey | pp wg pubkey)"
n1 wg set wg0 peer "$more_specific_key" allowed-ips 192.168.241.2/32
n2 wg set wg0 listen-port 9997
exec 4< <(n1 ncat -l -u -p 1111)
ncat_pid=$!
waitncatudp $netns1 $ncat_pid
n2 ncat -u 192.168.241.1 1111 <<<"X"
! read -r -N 1 -t 1 out <&4 || false
kill $ncat_pid
n1 wg set wg0 peer "$more_specific_key" remove
[[ $(n1 wg show wg0 endpoints) == "$pub2	[::1]:9997" ]]

# Test that we can change private keys keys and immediately handshake
n1 wg set wg0 private-key <(echo "$key1") peer "$pub2" preshared-key <(echo "$psk") allowed-ips 192.168.241.2/32 endpoint 127.0.0.1:2
n2 wg set wg0 private-key <(echo "$key2") listen-port 2 peer "$pub1" preshared-key <(echo "$psk") allowed-ips 192.168.241.1/32
n1 ping -W 1 -c 1 192.168.241.2
n1 wg set wg0 private-key <(echo "$key3")
n2 wg set wg0 peer "$pub3" preshared-key <(echo "$psk") allowed-ips 192.168.241.1/32 peer "$pub1" remove
n1 ping -W 1 -c 1 192.168.241.2
n2 wg set wg0 peer "$pub3" remove

# Test that we can route wg through wg
ip1 addr flush dev wg0
ip2 addr flush dev wg0
ip1 addr add fd00::5:1/112 dev wg0
ip2 addr add fd00::5:2/112 dev wg0
n1 wg set wg0 private-key <(echo "$key1") peer "$pub2" preshared-key <(echo "$psk") allowed-ips fd00::5:2/128 endpoint 127.0.0.1:2
n2 wg set wg0 private-key <(echo "$key2") listen-port 2 peer "$pub1" preshared-key <(echo "$psk") allowed-ips fd00::5:1/128 endpoint 127.212.121.99:9998
ip1 link add wg1 type wireguard
ip2 link add wg1 type wireguard
ip1 addr add 192.168.241.1/24 dev wg1
ip1 addr add fd00::1/112 dev wg1
ip2 addr add 192.168.241.2/24 dev wg1
ip2 addr add fd00::2/112 dev wg1
ip1 link set mtu 1340 up dev wg1
ip2 link set mtu 1340 up dev wg1
n1 wg set wg1 listen-port 5 private-key <(echo "$key3") peer "$pub4" allowed-ips 192.168.241.2/32,fd00::2/128 endpoint [fd00::5:2]:5
n2 wg set wg1 listen-port 5 private-key <(echo "$key4") peer "$pub3" allowed-ips 192.168.241.1/32,fd00::1/128 endpoint [fd00::5:1]:5
tests
# Try to set up a routing loop between the two namespaces
ip1 link set netns $netns0 dev wg1
ip0 addr add 192.168.241.1/24 dev wg1
ip0 link set up dev wg1
n0 ping -W 1 -c 1 192.168.241.2
n1 wg set wg0 peer "$pub2" endpoint 192.168.241.2:7
ip2 link del wg0
ip2 link del wg1
read _ _ tx_bytes_before < <(n0 wg show wg1 transfer)
! n0 ping -W 1 -c 10 -f 192.168.241.2 || false
sleep 1
read _ _ tx_bytes_after < <(n0 wg show wg1 transfer)
# Adapted: the kernel module stops a routing loop with its transmit
# recursion guard, which sees its own packet come back within one call;
# a userspace implementation's packets leave through the network stack,
# and it cannot tell its own from another's.
skip "routing loop bound: the kernel module's transmit recursion guard"
# (( tx_bytes_after - tx_bytes_before < 70000 ))

ip0 link del wg1
ip1 link del wg0

# Test using NAT. We now change the topology to this:
# ┌────────────────────────────────────────┐    ┌────────────────────────────────────────────────┐     ┌────────────────────────────────────────┐
# │             $ns1 namespace             │    │                 $ns0 namespace                 │     │             $ns2 namespace             │
# │                                        │    │                                                │     │                                        │
# │  ┌─────┐             ┌─────┐           │    │    ┌──────┐              ┌──────┐              │     │  ┌─────┐            ┌─────┐            │
# │  │ wg0 │─────────────│vethc│───────────┼────┼────│vethrc│              │vethrs│──────────────┼─────┼──│veths│────────────│ wg0 │            │
# │  ├─────┴──────────┐  ├─────┴──────────┐│    │    ├──────┴─────────┐    ├──────┴────────────┐ │     │  ├─────┴──────────┐ ├─────┴──────────┐ │
# │  │192.168.241.1/24│  │192.168.1.100/24││    │    │192.168.1.1/24  │    │10.0.0.1/24        │ │     │  │10.0.0.100/24   │ │192.168.241.2/24│ │
# │  │fd00::1/24      │  │                ││    │    │                │    │SNAT:192.168.1.0/24│ │     │  │                │ │fd00::2/24      │ │
# │  └────────────────┘  └────────────────┘│    │    └────────────────┘    └───────────────────┘ │     │  └────────────────┘ └────────────────┘ │
# └────────────────────────────────────────┘    └────────────────────────────────────────────────┘     └────────────────────────────────────────┘

ip1 link add dev wg0 type wireguard
ip2 link add dev wg0 type wireguard
configure_peers

ip0 link add vethrc type veth peer name vethc
ip0 link add vethrs type veth peer name veths
ip0 link set vethc netns $netns1
ip0 link set veths netns $netns2
ip0 link set vethrc up
ip0 link set vethrs up
ip0 addr add 192.168.1.1/24 dev vethrc
ip0 addr add 10.0.0.1/24 dev vethrs
ip1 addr add 192.168.1.100/24 dev vethc
ip1 link set vethc up
ip1 route add default via 192.168.1.1
ip2 addr add 10.0.0.100/24 dev veths
ip2 link set veths up
waitiface $netns0 vethrc
waitiface $netns0 vethrs
waitiface $netns1 vethc
waitiface $netns2 veths

n0 bash -c 'printf 1 > /proc/sys/net/ipv4/ip_forward'
n0 bash -c 'printf 2 > /proc/sys/net/netfilter/nf_conntrack_udp_timeout'
n0 bash -c 'printf 2 > /proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream'
n0 iptables -t nat -A POSTROUTING -s 192.168.1.0/24 -d 10.0.0.0/24 -j SNAT --to 10.0.0.1

n1 wg set wg0 peer "$pub2" endpoint 10.0.0.100:2 persistent-keepalive 1
n1 ping -W 1 -c 1 192.168.241.2
n2 ping -W 1 -c 1 192.168.241.1
[[ $(n2 wg show wg0 endpoints) == "$pub1	10.0.0.1:1" ]]
# Demonstrate n2 can still send packets to n1, since persistent-keepalive will prevent connection tracking entry from expiring (to see entries: `n0 conntrack -L`).
pp sleep 3
n2 ping -W 1 -c 1 192.168.241.1
n1 wg set wg0 peer "$pub2" persistent-keepalive 0

# Test that sk_bound_dev_if works
n1 ping -I wg0 -c 1 -W 1 192.168.241.2
# What about when the mark changes and the packet must be rerouted?
n1 iptables -t mangle -I OUTPUT -j MARK --set-xmark 1
n1 ping -c 1 -W 1 192.168.241.2 # First the boring case
n1 ping -I wg0 -c 1 -W 1 192.168.241.2 # Then the sk_bound_dev_if case
n1 iptables -t mangle -D OUTPUT -j MARK --set-xmark 1

# Test that onion routing works, even when it loops
n1 wg set wg0 peer "$pub3" allowed-ips 192.168.242.2/32 endpoint 192.168.241.2:5
ip1 addr add 192.168.242.1/24 dev wg0
ip2 link add wg1 type wireguard
ip2 addr add 192.168.242.2/24 dev wg1
n2 wg set wg1 private-key <(echo "$key3") listen-port 5 peer "$pub1" allowed-ips 192.168.242.1/32
ip2 link set wg1 up
n1 ping -W 1 -c 1 192.168.242.2
ip2 link del wg1
n1 wg set wg0 peer "$pub3" endpoint 192.168.242.2:5
! n1 ping -W 1 -c 1 192.168.242.2 || false # Should not crash kernel
n1 wg set wg0 peer "$pub3" remove
ip1 addr del 192.168.242.1/24 dev wg0

# Do a wg-quick(8)-style policy routing for the default route, making sure vethc has a v6 address to tease out bugs.
ip1 -6 addr add fc00::9/96 dev vethc
ip1 -6 route add default via fc00::1
ip2 -4 addr add 192.168.99.7/32 dev wg0
ip2 -6 addr add abab::1111/128 dev wg0
n1 wg set wg0 fwmark 51820 peer "$pub2" allowed-ips 192.168.99.7,abab::1111
ip1 -6 route add default dev wg0 table 51820
ip1 -6 rule add not fwmark 51820 table 51820
ip1 -6 rule add table main suppress_prefixlength 0
ip1 -4 route add default dev wg0 table 51820
ip1 -4 rule add not fwmark 51820 table 51820
ip1 -4 rule add table main suppress_prefixlength 0
n1 bash -c 'printf 0 > /proc/sys/net/ipv4/conf/vethc/rp_filter'
# Flood the pings instead of sending just one, to trigger routing table reference counting bugs.
n1 ping -W 1 -c 100 -f 192.168.99.7
n1 ping -W 1 -c 100 -f abab::1111

# Have ns2 NAT into wg0 packets from ns0, but return an icmp error along the right route.
n2 iptables -t nat -A POSTROUTING -s 10.0.0.0/24 -d 192.168.241.0/24 -j SNAT --to 192.168.241.2
n0 iptables -t filter -A INPUT \! -s 10.0.0.0/24 -i vethrs -j DROP # Manual rpfilter just to be explicit.
n2 bash -c 'printf 1 > /proc/sys/net/ipv4/ip_forward'
ip0 -4 route add 192.168.241.1 via 10.0.0.100
n2 wg set wg0 peer "$pub1" remove
# Adapted: the kernel module answers a packet that no peer takes with an
# ICMP error sent through the stack (icmp_ndo_send); the userspace
# implementations drop it.
skip "ICMP host unreachable for a packet no peer takes: sent by the kernel module (icmp_ndo_send)"
# [[ $(! n0 ping -W 1 -c 1 192.168.241.1 || false) == *"From 10.0.0.100 icmp_seq=1 Destination Host Unreachable"* ]]

n0 iptables -t nat -F
n0 iptables -t filter -F
n2 iptables -t nat -F
ip0 link del vethrc
ip0 link del vethrs
ip1 link del wg0
ip2 link del wg0

# Test that saddr routing is sticky but not too sticky, changing to this topology:
# ┌────────────────────────────────────────┐    ┌────────────────────────────────────────┐
# │             $ns1 namespace             │    │             $ns2 namespace             │
# │                                        │    │                                        │
# │  ┌─────┐             ┌─────┐           │    │  ┌─────┐            ┌─────┐            │
# │  │ wg0 │─────────────│veth1│───────────┼────┼──│veth2│────────────│ wg0 │            │
# │  ├─────┴──────────┐  ├─────┴──────────┐│    │  ├─────┴──────────┐ ├─────┴──────────┐ │
# │  │192.168.241.1/24│  │10.0.0.1/24     ││    │  │10.0.0.2/24     │ │192.168.241.2/24│ │
# │  │fd00::1/24      │  │fd00:aa::1/96   ││    │  │fd00:aa::2/96   │ │fd00::2/24      │ │
# │  └────────────────┘  └────────────────┘│    │  └────────────────┘ └────────────────┘ │
# └────────────────────────────────────────┘    └────────────────────────────────────────┘

ip1 link add dev wg0 type wireguard
ip2 link add dev wg0 type wireguard
configure_peers
ip1 link add veth1 type veth peer name veth2
ip1 link set veth2 netns $netns2
n1 bash -c 'printf 0 > /proc/sys/net/ipv6/conf/all/accept_dad'
n2 bash -c 'printf 0 > /proc/sys/net/ipv6/conf/all/accept_dad'
n1 bash -c 'printf 0 > /proc/sys/net/ipv6/conf/veth1/accept_dad'
n2 bash -c 'printf 0 > /proc/sys/net/ipv6/conf/veth2/accept_dad'
n1 bash -c 'printf 1 > /proc/sys/net/ipv4/conf/veth1/promote_secondaries'

# First we check that we aren't overly sticky and can fall over to new IPs when old ones are removed
ip1 addr add 10.0.0.1/24 dev veth1
ip1 addr add fd00:aa::1/96 dev veth1
ip2 addr add 10.0.0.2/24 dev veth2
ip2 addr add fd00:aa::2/96 dev veth2
ip1 link set veth1 up
ip2 link set veth2 up
waitiface $netns1 veth1
waitiface $netns2 veth2
n1 wg set wg0 peer "$pub2" endpoint 10.0.0.2:2
n1 ping -W 1 -c 1 192.168.241.2
ip1 addr add 10.0.0.10/24 dev veth1
ip1 addr del 10.0.0.1/24 dev veth1
n1 ping -W 1 -c 1 192.168.241.2
n1 wg set wg0 peer "$pub2" endpoint [fd00:aa::2]:2
n1 ping -W 1 -c 1 192.168.241.2
ip1 addr add fd00:aa::10/96 dev veth1
ip1 addr del fd00:aa::1/96 dev veth1
n1 ping -W 1 -c 1 192.168.241.2

# Now we show that we can successfully do reply to sender routing
ip1 link set veth1 down
ip2 link set veth2 down
ip1 addr flush dev veth1
ip2 addr flush dev veth2
ip1 addr add 10.0.0.1/24 dev veth1
ip1 addr add 10.0.0.2/24 dev veth1
ip1 addr add fd00:aa::1/96 dev veth1
ip1 addr add fd00:aa::2/96 dev veth1
ip2 addr add 10.0.0.3/24 dev veth2
ip2 addr add fd00:aa::3/96 dev veth2
ip1 link set veth1 up
ip2 link set veth2 up
waitiface $netns1 veth1
waitiface $netns2 veth2
n2 wg set wg0 peer "$pub1" endpoint 10.0.0.1:1
n2 ping -W 1 -c 1 192.168.241.1
[[ $(n2 wg show wg0 endpoints) == "$pub1	10.0.0.1:1" ]]
n2 wg set wg0 peer "$pub1" endpoint [fd00:aa::1]:1
n2 ping -W 1 -c 1 192.168.241.1
[[ $(n2 wg show wg0 endpoints) == "$pub1	[fd00:aa::1]:1" ]]
n2 wg set wg0 peer "$pub1" endpoint 10.0.0.2:1
n2 ping -W 1 -c 1 192.168.241.1
[[ $(n2 wg show wg0 endpoints) == "$pub1	10.0.0.2:1" ]]
n2 wg set wg0 peer "$pub1" endpoint [fd00:aa::2]:1
n2 ping -W 1 -c 1 192.168.241.1
[[ $(n2 wg show wg0 endpoints) == "$pub1	[fd00:aa::2]:1" ]]

# What happens if the inbound destination address belongs to a different interface as the default route?
ip1 link add dummy0 type dummy
ip1 addr add 10.50.0.1/24 dev dummy0
ip1 link set dummy0 up
ip2 route add 10.50.0.0/24 dev veth2
n2 wg set wg0 peer "$pub1" endpoint 10.50.0.1:1
n2 ping -W 1 -c 1 192.168.241.1
[[ $(n2 wg show wg0 endpoints) == "$pub1	10.50.0.1:1" ]]

ip1 link del dummy0
ip1 addr flush dev veth1
ip2 addr flush dev veth2
ip1 route flush dev veth1
ip2 route flush dev veth2

# Now we see what happens if another interface route takes precedence over an ongoing one
ip1 link add veth3 type veth peer name veth4
ip1 link set veth4 netns $netns2
ip1 addr add 10.0.0.1/24 dev veth1
ip2 addr add 10.0.0.2/24 dev veth2
ip1 addr add 10.0.0.3/24 dev veth3
ip1 link set veth1 up
ip2 link set veth2 up
ip1 link set veth3 up
ip2 link set veth4 up
waitiface $netns1 veth1
waitiface $netns2 veth2
waitiface $netns1 veth3
waitiface $netns2 veth4
ip1 route flush dev veth1
ip1 route flush dev veth3
ip1 route add 10.0.0.0/24 dev veth1 src 10.0.0.1 metric 2
n1 wg set wg0 peer "$pub2" endpoint 10.0.0.2:2
n1 ping -W 1 -c 1 192.168.241.2
[[ $(n2 wg show wg0 endpoints) == "$pub1	10.0.0.1:1" ]]
ip1 route add 10.0.0.0/24 dev veth3 src 10.0.0.3 metric 1
n1 bash -c 'printf 0 > /proc/sys/net/ipv4/conf/veth1/rp_filter'
n2 bash -c 'printf 0 > /proc/sys/net/ipv4/conf/veth4/rp_filter'
n1 bash -c 'printf 0 > /proc/sys/net/ipv4/conf/all/rp_filter'
n2 bash -c 'printf 0 > /proc/sys/net/ipv4/conf/all/rp_filter'
n1 ping -W 1 -c 1 192.168.241.2
[[ $(n2 wg show wg0 endpoints) == "$pub1	10.0.0.3:1" ]]

ip1 link del veth1
ip1 link del veth3
ip1 link del wg0
ip2 link del wg0

# We test that Netlink/IPC is working properly by doing things that usually cause split responses
ip0 link add dev wg0 type wireguard
config=( "[Interface]" "PrivateKey=$(wg genkey)" "[Peer]" "PublicKey=$(wg genkey)" )
for a in {1..255}; do
	for b in {0..255}; do
		config+=( "AllowedIPs=$a.$b.0.0/16,$a::$b/128" )
	done
done
# Adapted: bounded, so that an implementation that takes minutes fails here.
n0 timeout $slow_seconds wg setconf wg0 <(printf '%s\n' "${config[@]}")
i=0
# Adapted: bounded, as the step before.
for ip in $(n0 timeout $slow_seconds wg show wg0 allowed-ips); do
	((++i))
done
((i == 255*256*2+1))
ip0 link del wg0
ip0 link add dev wg0 type wireguard
config=( "[Interface]" "PrivateKey=$(wg genkey)" )
for a in {1..40}; do
	config+=( "[Peer]" "PublicKey=$(wg genkey)" )
	for b in {1..52}; do
		config+=( "AllowedIPs=$a.$b.0.0/16" )
	done
done
n0 wg setconf wg0 <(printf '%s\n' "${config[@]}")
i=0
while read -r line; do
	j=0
	for ip in $line; do
		((++j))
	done
	((j == 53))
	((++i))
done < <(n0 wg show wg0 allowed-ips)
((i == 40))
ip0 link del wg0
ip0 link add wg0 type wireguard
config=( )
for i in {1..29}; do
	config+=( "[Peer]" "PublicKey=$(wg genkey)" )
done
config+=( "[Peer]" "PublicKey=$(wg genkey)" "AllowedIPs=255.2.3.4/32,abcd::255/128" )
n0 wg setconf wg0 <(printf '%s\n' "${config[@]}")
n0 wg showconf wg0 > /dev/null
ip0 link del wg0

allowedips=( )
for i in {1..197}; do
        allowedips+=( abcd::$i )
done
saved_ifs="$IFS"
IFS=,
allowedips="${allowedips[*]}"
IFS="$saved_ifs"
ip0 link add wg0 type wireguard
n0 wg set wg0 peer "$pub1"
n0 wg set wg0 peer "$pub2" allowed-ips "$allowedips"
{
	read -r pub allowedips
	[[ $pub == "$pub1" && $allowedips == "(none)" ]]
	read -r pub allowedips
	[[ $pub == "$pub2" ]]
	i=0
	for _ in $allowedips; do
		((++i))
	done
	((i == 197))
} < <(n0 wg show wg0 allowed-ips)
ip0 link del wg0

! n0 wg show doesnotexist || false

ip0 link add wg0 type wireguard
n0 wg set wg0 private-key <(echo "$key1") peer "$pub2" preshared-key <(echo "$psk")
[[ $(n0 wg show wg0 private-key) == "$key1" ]]
[[ $(n0 wg show wg0 preshared-keys) == "$pub2	$psk" ]]
n0 wg set wg0 private-key /dev/null peer "$pub2" preshared-key /dev/null
[[ $(n0 wg show wg0 private-key) == "(none)" ]]
[[ $(n0 wg show wg0 preshared-keys) == "$pub2	(none)" ]]
n0 wg set wg0 peer "$pub2"
n0 wg set wg0 private-key <(echo "$key2")
[[ $(n0 wg show wg0 public-key) == "$pub2" ]]
[[ -z $(n0 wg show wg0 peers) ]]
n0 wg set wg0 peer "$pub2"
[[ -z $(n0 wg show wg0 peers) ]]
n0 wg set wg0 private-key <(echo "$key1")
n0 wg set wg0 peer "$pub2"
[[ $(n0 wg show wg0 peers) == "$pub2" ]]
n0 wg set wg0 private-key <(echo "/${key1:1}")
[[ $(n0 wg show wg0 private-key) == "+${key1:1}" ]]
n0 wg set wg0 peer "$pub2" allowed-ips 0.0.0.0/0,10.0.0.0/8,100.0.0.0/10,172.16.0.0/12,192.168.0.0/16
n0 wg set wg0 peer "$pub2" allowed-ips 0.0.0.0/0
n0 wg set wg0 peer "$pub2" allowed-ips ::/0,1700::/111,5000::/4,e000::/37,9000::/75
n0 wg set wg0 peer "$pub2" allowed-ips ::/0
n0 wg set wg0 peer "$pub2" remove
for low_order_point in AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= 4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA= X5yVvKNQjCSx0LFVnIPvWwREXMRYHI6G2CJO3dCfEVc= 7P///////////////////////////////////////38= 7f///////////////////////////////////////38= 7v///////////////////////////////////////38=; do
	n0 wg set wg0 peer "$low_order_point" persistent-keepalive 1 endpoint 127.0.0.1:1111
done
[[ -n $(n0 wg show wg0 peers) ]]
exec 4< <(n0 ncat -l -u -p 1111)
ncat_pid=$!
waitncatudp $netns0 $ncat_pid
ip0 link set wg0 up
! read -r -n 1 -t 2 <&4 || false
kill $ncat_pid
ip0 link del wg0

# Ensure there aren't circular reference loops
ip1 link add wg1 type wireguard
ip2 link add wg2 type wireguard
ip1 link set wg1 netns $netns2
ip2 link set wg2 netns $netns1
pp ip netns delete $netns1
pp ip netns delete $netns2
pp ip netns add $netns1
pp ip netns add $netns2

# Adapted: the kernel module's object tracking is read from its debug
# messages in /dev/kmsg (a debug build's); a userspace implementation
# writes none.
skip "object lifetimes: read from the kernel module's debug messages in /dev/kmsg"
# sleep 2 # Wait for cleanup and grace periods
# declare -A objects
# while read -t 0.1 -r line 2>/dev/null || [[ $? -ne 142 ]]; do
# 	[[ $line =~ .*(wg[0-9]+:\ [A-Z][a-z]+\ ?[0-9]*)\ .*(created|destroyed).* ]] || continue
# 	objects["${BASH_REMATCH[1]}"]+="${BASH_REMATCH[2]}"
# done < /dev/kmsg
# alldeleted=1
# for object in "${!objects[@]}"; do
# 	if [[ ${objects["$object"]} != *createddestroyed ]]; then
# 		echo "Error: $object: merely ${objects["$object"]}" >&3
# 		alldeleted=0
# 	fi
# done
# [[ $alldeleted -eq 1 ]]
# pretty "" "Objects that were created were also destroyed."
