package uapi

import (
	"fmt"
	"log/slog"
	"sync"

	"pipeguard/cmd/headless-client/sdsocket"
)

// Open serves interface iface's socket for dev: the one the service
// manager passed, if it passed one (socket activation, as the units do,
// so that the socket is root's in root's /run/wireguard while the tunnel
// runs unprivileged), else a new one at SocketPath(iface). It takes the
// passed sockets from the environment, so call it once per process.
func Open(iface string, dev Device, lock sync.Locker, log *slog.Logger) (*Server, error) {
	files, err := sdsocket.Take()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIO, err)
	}
	path := SocketPath(iface)
	switch len(files) {
	case 0:
		return Listen(path, dev, lock, log)
	case 1:
		defer files[0].Close()
		return Inherit(files[0].File, path, dev, lock, log)
	}
	for _, f := range files {
		f.Close()
	}
	return nil, fmt.Errorf("%w: %d sockets passed in (LISTEN_FDS); want one, the UAPI socket at %s", ErrIO, len(files), path)
}
