//go:build !linux

package nsthread

import "errors"

// Do is unsupported outside Linux: network namespaces are Linux's.
func Do(name string, fn func() error) error {
	return errors.New("netns: network namespaces are unsupported on this platform")
}
