//go:build !linux

package netnstest

import "errors"

// Do is unsupported outside Linux: network namespaces are Linux's.
func (ns *NS) Do(fn func() error) error {
	return errors.New("netnstest: network namespaces are unsupported on this platform")
}
