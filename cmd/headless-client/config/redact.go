package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Error messages go to a terminal and to the journal, so they never quote
// text that may hold a key. A mistyped key line is the usual case: a
// base64 key ends in '=', so "PrivateKey: <key>" splits at the key's own
// '=' and its "key name" is most of the key. Messages therefore quote a
// key name only when it is a plain name no longer than any known key,
// never a whole line, and a value only when it holds nothing as long as a
// key.

// notShown stands in a message for text it leaves out.
const notShown = "the line is not shown: it may hold a key"

// maxKeyName is longer than every key of the format
// (PersistentKeepalive, 19), and much shorter than a key (44 characters).
const maxKeyName = 24

// isName reports whether s is letters only, 1 to maxKeyName of them: a
// key or section name, or a mistyped one, never a key.
func isName(s string) bool {
	if s == "" || len(s) > maxKeyName {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// checkKeyName refuses a "key" that is not a name, telling which known
// key it starts with, if any (as "PrivateKey: <key>" does).
func checkKeyName(key string) error {
	if isName(key) {
		return nil
	}
	if lead := leadingName(key); knownKey(lead) {
		return fmt.Errorf("%w: %s must be followed by = and its value (%s)", ErrSyntax, lead, notShown)
	}
	return fmt.Errorf("%w: want Key = Value, with a key name of letters only (%s)", ErrSyntax, notShown)
}

// leadingName is the letters s starts with.
func leadingName(s string) string {
	return s[:len(s)-len(strings.TrimLeft(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))]
}

// knownKeys are the format's keys and the wg-quick keys it refuses,
// lower case.
var knownKeys = []string{"privatekey", "address", "listenport", "mtu", "table", "fwmark", "dns",
	"publickey", "presharedkey", "endpoint", "allowedips", "persistentkeepalive",
	"preup", "postup", "predown", "postdown", "saveconfig"}

func knownKey(s string) bool { return slices.Contains(knownKeys, strings.ToLower(s)) }

// minKeyRun is the shortest run of base64 characters that quote holds
// back: a key has 43 of them before its '='. Host names, addresses and
// numbers in a valid config are shorter, so they still show.
const minKeyRun = 40

// quote quotes a value for an error message, or says it is not shown if
// it may hold a key.
func quote(s string) string {
	if mayHoldKey(s) {
		return "(a value that is not shown: it may hold a key)"
	}
	return strconv.Quote(s)
}

// mayHoldKey reports whether s has a run of minKeyRun base64 characters.
func mayHoldKey(s string) bool {
	run := 0
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/' {
			if run++; run >= minKeyRun {
				return true
			}
			continue
		}
		run = 0
	}
	return false
}
