package tunio

import (
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// CreateTUN creates the TUN device name (a kernel-chosen name if it ends in
// "%d") with the given MTU and default options. See CreateTUNOptions.
func CreateTUN(name string, mtu int) (Device, error) {
	return CreateTUNOptions(name, mtu, TUNOptions{})
}

// CreateTUNOptions creates a TUN device over golang.zx2c4.com/wireguard/tun
// with its offloads on: Read splits TSO/USO super-packets from the kernel
// into packets of at most the MTU (pass BatchSize buffers so they fit),
// and Write coalesces batches of TCP (and UDP) segments of one flow into
// large writes. With offloads on, the offset given to Write must be at
// least 10; Offset is fine.
//
// The device lives in the network namespace of the calling thread. It
// starts one goroutine that follows the device's link events (keeping its
// MTU current); Close waits for it. The device is removed from the system
// when it is closed.
func CreateTUNOptions(name string, mtu int, opts TUNOptions) (Device, error) {
	dev, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, err
	}
	// The wrapped device looks its MTU up by name in the namespace of
	// whichever thread asks; the event goroutine may run anywhere, so it
	// asks through a socket made here, in the device's namespace.
	ctl, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		dev.Close()
		return nil, os.NewSyscallError("socket", err)
	}
	t, err := wrapTUN(dev, ctl, opts)
	if err != nil {
		unix.Close(ctl)
		return nil, err
	}
	return t, nil
}

// nativeTUN adapts a wireguard tun.Device to Device. Read and Write are
// safe for concurrent use (the wrapped device serializes each).
type nativeTUN struct {
	dev     tun.Device
	ctl     int // AF_INET socket in the device's namespace, for ioctls
	name    string
	batch   int
	offload bool // IFF_VNET_HDR: the kernel speaks virtio headers
	mtu     atomic.Int64
	closed  atomic.Bool
	raw     syscall.RawConn // the device's file, for polling; nil if unavailable

	pmu    sync.Mutex // guards pready
	pready bool
	pollFn func(fd uintptr) // poll as a method value, made once: a closure per call would allocate
	events chan struct{}    // closed when the event goroutine is done

	wmu   sync.Mutex // guards wbufs
	wbufs [][]byte   // write buffers of groBufCap, nil with NoWriteCopy
	wlist [][]byte   // slice headers handed to the device
}

var (
	_ Device     = (*nativeTUN)(nil)
	_ ReadPoller = (*nativeTUN)(nil)
)

// wrapTUN takes over dev and ctl, a socket in dev's namespace, on success.
func wrapTUN(dev tun.Device, ctl int, opts TUNOptions) (*nativeTUN, error) {
	name, err := dev.Name()
	if err != nil {
		dev.Close()
		return nil, err
	}
	t := &nativeTUN{
		dev:   dev,
		ctl:   ctl,
		name:  name,
		batch: dev.BatchSize(),
		// wireguard's Linux TUN batches exactly when it has offloads.
		offload: dev.BatchSize() > 1,
		events:  make(chan struct{}),
		wlist:   make([][]byte, dev.BatchSize()),
	}
	if err := t.readMTU(); err != nil {
		dev.Close()
		return nil, err
	}
	if f := dev.File(); f != nil {
		// SyscallConn leaves the file non-blocking on the netpoller,
		// unlike Fd.
		t.raw, _ = f.SyscallConn()
		t.pollFn = t.poll
	}
	if t.offload && !opts.NoWriteCopy {
		// 64 KiB each, 8 MiB for a batch of 128: address space mostly;
		// pages are touched only as far as coalesced writes reach.
		t.wbufs = make([][]byte, t.batch)
		for i := range t.wbufs {
			t.wbufs[i] = make([]byte, 0, Offset+groBufCap)
		}
	}
	go t.watch()
	return t, nil
}

// watch drains the device's event channel, which must be read: its
// producers block on a full channel, and Close would then wait for them
// forever. It closes t.events when the device has closed its channel.
func (t *nativeTUN) watch() {
	defer close(t.events)
	for ev := range t.dev.Events() {
		if ev&tun.EventMTUUpdate != 0 {
			_ = t.readMTU() // keep the last known MTU if this fails
		}
	}
}

// readMTU asks the kernel for the device's MTU and stores it.
func (t *nativeTUN) readMTU() error {
	ifr, err := unix.NewIfreq(t.name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(t.ctl, unix.SIOCGIFMTU, ifr); err != nil {
		return os.NewSyscallError("SIOCGIFMTU", err)
	}
	t.mtu.Store(int64(ifr.Uint32()))
	return nil
}

// Read implements Device. An error satisfying errors.Is(err,
// ErrTooManySegments) comes with n packets that are good; the rest of that
// super-packet was lost, and reading may go on.
func (t *nativeTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if t.closed.Load() {
		return 0, ErrClosed
	}
	n, err := t.dev.Read(bufs, sizes, offset)
	if err != nil {
		return n, t.mapError(err)
	}
	return n, nil
}

// Readable implements ReadPoller: a poll(2) of the device's file for
// input, which returns at once. One system call, made only by a reader
// that has other work to do between reads.
func (t *nativeTUN) Readable() bool {
	if t.raw == nil || t.closed.Load() {
		return false
	}
	t.pmu.Lock()
	defer t.pmu.Unlock()
	t.pready = false
	if t.raw.Control(t.pollFn) != nil {
		return false
	}
	return t.pready
}

func (t *nativeTUN) poll(fd uintptr) {
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds[:], 0)
	t.pready = err == nil && n > 0 && fds[0].Revents&unix.POLLIN != 0
}

// Write implements Device. It returns len(bufs) unless the device is
// closed or gone; a packet the kernel refused is reported in the (joined) error,
// and the others were written.
func (t *nativeTUN) Write(bufs [][]byte, offset int) (int, error) {
	if t.closed.Load() {
		return 0, ErrClosed
	}
	if t.offload && offset < virtioNetHdrLen {
		return 0, ErrOffset
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	var first error
	written := 0
	for len(bufs) > 0 {
		chunk := bufs[:min(len(bufs), len(t.wlist))]
		list := t.wlist[:len(chunk)]
		for i, b := range chunk {
			if t.wbufs != nil {
				// The device's GRO may grow and swap these; it only
				// ever sees our copies.
				list[i] = append(t.wbufs[i][:0], b...)
			} else {
				list[i] = b
			}
		}
		_, err := t.dev.Write(list, offset)
		clear(list)
		if err != nil {
			if err = t.mapError(err); err == ErrClosed || err == ErrDeviceGone {
				return written, err
			}
			if first == nil {
				first = err
			}
		}
		written += len(chunk)
		bufs = bufs[len(chunk):]
	}
	return written, first
}

func (t *nativeTUN) mapError(err error) error {
	if t.closed.Load() {
		return ErrClosed
	}
	if errors.Is(err, os.ErrClosed) {
		// The wrapped device reports EBADFD, the kernel's answer once
		// the interface is deleted, as os.ErrClosed; but we did not
		// close it.
		return ErrDeviceGone
	}
	if errors.Is(err, tun.ErrTooManySegments) {
		return ErrTooManySegments
	}
	if strings.Contains(err.Error(), "overflows bufs element len") {
		// wireguard's TUN (with offloads) read a packet larger than
		// bufs[0] and dropped it, with an error of no type of its own.
		// TestTUNReadTooBig pins the text.
		return ErrPacketTooBig
	}
	return err
}

// BatchSize implements Device.
func (t *nativeTUN) BatchSize() int { return t.batch }

// MTU implements Device; it follows changes made after creation.
func (t *nativeTUN) MTU() int { return int(t.mtu.Load()) }

// Name implements Device.
func (t *nativeTUN) Name() string { return t.name }

// Close implements Device.
func (t *nativeTUN) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	err := t.dev.Close()
	<-t.events
	unix.Close(t.ctl)
	return err
}
