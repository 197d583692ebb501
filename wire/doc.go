// Package wire owns WireGuard's message formats: their exact sizes, strict
// parsing and marshalling, the fixed-size packet arrays the pipeline carries
// by value, the padding of inner packets, and peeks into inner IP headers.
//
// Nothing here does I/O or cryptography; every function is safe for
// concurrent use on distinct values and allocates nothing.
package wire
