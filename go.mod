module pipeguard

go 1.26.0

require (
	github.com/alecthomas/kong v1.17.0
	github.com/godbus/dbus/v5 v5.2.4
	github.com/google/pprof v0.0.0-20261105003125-4bf881d7fb0b
	github.com/lmittmann/tint v1.2.1
	github.com/vishvananda/netlink v1.3.1
	go.uber.org/goleak v1.3.0
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0
	golang.zx2c4.com/wireguard v0.0.0-20260522210424-ecfc5a8d5446
)

require (
	github.com/vishvananda/netns v0.0.5 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.zx2c4.com/wintun v0.0.0-20230126152724-0fa3db229ce2 // indirect
)
