#!/usr/bin/env bash
# Installs what PipeGuard's build and tests need on a fresh Debian machine:
# the Go modules (nfpm, for `make deb`, is fetched by its first use: see
# tools/go.mod), wireguard-tools (the stock `wg`, which tests compare with
# and point at our UAPI socket), iproute2 (network namespaces, veth),
# iperf3 (the netns benchmark and the kernel selftest), openresolv and
# dbus-daemon (the DNS tests), ncat and iptables (the kernel selftest).
# Idempotent: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v wg >/dev/null 2>&1 || need+=(wireguard-tools)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v iperf3 >/dev/null 2>&1 || need+=(iperf3)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
# setpriv: the end-to-end tests drop CAP_NET_ADMIN with it to check the
# client's refusal.
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
# openresolv: the DNS tests run the real resolvconf(8), confined to a
# network namespace's own /etc (installing it changes no resolv.conf).
# Debian's resolvconf, if that is what the machine has, is left alone:
# replacing it would change how the host manages DNS.
if ! command -v resolvconf >/dev/null 2>&1; then
	need+=(openresolv)
elif ! resolvconf --version 2>/dev/null | grep -q '^openresolv'; then
	echo "setup: resolvconf here is not openresolv; the openresolv DNS tests will fail" >&2
fi
# wireguard-go: Debian's build, an older release than the module
# cmd/wgpeer is built from, as a second independent peer for interop.
command -v wireguard-go >/dev/null 2>&1 || need+=(wireguard-go)
# dbus-daemon: the systemd-resolved tests serve a fake resolved on a
# private bus.
command -v dbus-daemon >/dev/null 2>&1 || need+=(dbus-daemon)
# wg-quick's full tunnel (the wg-quick end-to-end test, in a namespace)
# runs nft, or iptables-restore, and sysctl; without either it fails.
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v sysctl >/dev/null 2>&1 || need+=(procps)
# ncat and iptables: the kernel's WireGuard selftest, adapted
# (scripts/netns-selftest.sh), listens with ncat and filters, marks and
# NATs with iptables, inside its own namespaces.
command -v ncat >/dev/null 2>&1 || need+=(ncat)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
# systemd-analyze checks the units (verify, security); strace shows the
# client's system calls stay within the units' SystemCallFilter=.
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v strace >/dev/null 2>&1 || need+=(strace)
# lintian and dpkg: the package test lints what `make deb` builds and
# installs, removes and purges it (adduser: the package depends on it).
command -v lintian >/dev/null 2>&1 || need+=(lintian)
command -v adduser >/dev/null 2>&1 || need+=(adduser)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: need root to install: ${need[*]} (run with sudo)" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
go mod download
