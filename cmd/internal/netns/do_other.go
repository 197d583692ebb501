//go:build !linux

package netns

import "errors"

// Do is unsupported outside Linux: network namespaces are Linux's.
func (ns *NS) Do(fn func() error) error {
	return errors.New("netns: network namespaces are unsupported on this platform")
}
