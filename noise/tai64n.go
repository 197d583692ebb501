package noise

import (
	"bytes"
	"encoding/binary"
	"time"
)

// TimestampSize is the size of a TAI64N label.
const TimestampSize = 12

// tai64Base is 2^62 + 10: TAI64 labels count seconds from 2^62, and TAI was
// 10 s ahead of UTC in 1970. wireguard-go (and the kernel) ignore the leap
// seconds since; all that matters is that labels only grow.
const tai64Base = uint64(0x400000000000000a)

// whitenerMask clears the low 24 bits of the nanoseconds (about 16.8 ms of
// resolution), as wireguard-go does, so that the timestamp does not reveal
// the sender's precise clock and timer behaviour to an observer who can
// decrypt it later.
const whitenerMask = uint32(1<<24 - 1)

// Timestamp is a TAI64N label: 8 bytes of seconds and 4 of nanoseconds,
// big-endian, so that byte order is time order. The zero value is earlier
// than every real timestamp.
type Timestamp [TimestampSize]byte

// Stamp returns the whitened TAI64N label of t.
func Stamp(t time.Time) Timestamp {
	var ts Timestamp
	binary.BigEndian.PutUint64(ts[:8], tai64Base+uint64(t.Unix()))
	binary.BigEndian.PutUint32(ts[8:], uint32(t.Nanosecond())&^whitenerMask)
	return ts
}

// After reports whether ts is strictly later than o.
func (ts Timestamp) After(o Timestamp) bool {
	return bytes.Compare(ts[:], o[:]) > 0
}

// Time returns the time ts stands for (at the whitened resolution).
func (ts Timestamp) Time() time.Time {
	secs := binary.BigEndian.Uint64(ts[:8]) - tai64Base
	return time.Unix(int64(secs), int64(binary.BigEndian.Uint32(ts[8:])))
}
