// Package wire owns WireGuard's message formats: their exact sizes, strict
// parsing and marshalling, the fixed-size packet arrays the pipeline carries
// by value, the padding of inner packets, peeks into inner IP headers, the
// flow hash a flow-fair queue sorts inner packets by, and the ECN field:
// marking CE, and carrying ECN between outer and inner headers (RFC 6040).
//
// Nothing here does I/O or cryptography; every function is safe for
// concurrent use on distinct values and allocates nothing.
package wire
