#!/usr/bin/env bash
# Installs what PipeGuard's build and tests need on a fresh Debian machine:
# the Go modules (nfpm, for `make deb`, is fetched by its first use: see
# tools/go.mod), wireguard-tools (the stock `wg`, which tests compare with
# and point at our UAPI socket), iproute2 (network namespaces, veth) and
# iperf3 (the netns benchmark). Idempotent: it installs only what is missing.
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
