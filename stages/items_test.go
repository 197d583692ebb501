package stages

import (
	"testing"
	"unsafe"
)

// TestItemSizes keeps queue slots off each other's cache lines (see
// itemPad): if a field is added, adjust the padding.
func TestItemSizes(t *testing.T) {
	for name, size := range map[string]uintptr{
		"inItem":    unsafe.Sizeof(inItem{}),
		"outItem":   unsafe.Sizeof(outItem{}),
		"tunPacket": unsafe.Sizeof(tunPacket{}),
	} {
		if size%128 != 0 {
			t.Errorf("%s is %d bytes, not a multiple of 128", name, size)
		}
	}
}
