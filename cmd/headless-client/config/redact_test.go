package config

import (
	"strconv"
	"strings"
	"testing"
)

// TestParseErrorsHideKeys mistypes each key field of the format in the
// ways admins do, in its own section and elsewhere, and checks that the
// error names the key and the line but quotes no part of the key: not
// the 43 characters before its '=', nor any 8 of them in a row.
func TestParseErrorsHideKeys(t *testing.T) {
	fields := []struct {
		key, value, section string
	}{
		{"PrivateKey", kPriv, "[Interface]\n"},
		{"PublicKey", kPeer, "[Interface]\nPrivateKey = " + kPriv + "\n[Peer]\n"},
		{"PresharedKey", kPSK, "[Interface]\nPrivateKey = " + kPriv + "\n[Peer]\nPublicKey = " + kPeer + "\n"},
	}
	mistypes := []struct {
		name, line string // line: %[1]s is the key name, %[2]s the key
		mentions   string // what the error must name: "" the key name, "-" nothing more than the line
	}{
		{"colon", "%[1]s: %[2]s", ""},
		{"colon no space", "%[1]s:%[2]s", ""},
		{"space", "%[1]s %[2]s", ""},
		{"tab", "%[1]s\t%[2]s", ""},
		{"no padding", "%[1]s %[2]s", ""}, // the key without its '=', below
		{"double equals", "%[1]s == %[2]s", ""},
		{"lower case colon", "%[1]s: %[2]s", ""},
		{"key alone", "%[2]s", "Key = Value"},
		{"key glued to the name", "%[1]s%[2]s", "="},
		{"on the header's line", "[Peer] %[1]s = %[2]s", "]"},
		{"as a section", "[%[2]s]", "want [Interface] or [Peer]"},
		{"as another key's value", "ListenPort = %[2]s", "ListenPort"},
		{"in a list", "AllowedIPs = 10.0.0.0/8, %[2]s", "-"},
		{"as an endpoint", "Endpoint = %[2]s:51820", "-"},
		{"as DNS", "DNS = %[2]s", "DNS"},
	}
	for _, f := range fields {
		for _, m := range mistypes {
			t.Run(f.key+"/"+m.name, func(t *testing.T) {
				name, value := f.key, f.value
				switch m.name {
				case "no padding":
					value = strings.TrimSuffix(value, "=")
				case "lower case colon":
					name = strings.ToLower(name)
				}
				line := strings.ReplaceAll(strings.ReplaceAll(m.line, "%[1]s", name), "%[2]s", value)
				text := f.section + line + "\n"
				lineNo := strings.Count(f.section, "\n") + 1
				_, err := Parse("pg0.conf", []byte(text))
				if err == nil {
					t.Fatalf("%q parsed", line)
				}
				msg := err.Error()
				for i := 0; i+8 <= len(f.value)-1; i++ {
					if strings.Contains(msg, f.value[i:i+8]) {
						t.Fatalf("error quotes part of the key (%q at %d):\n%s", f.value[i:i+8], i, msg)
					}
				}
				if !strings.HasPrefix(msg, "pg0.conf:"+strconv.Itoa(lineNo)+":") {
					t.Errorf("error %q does not name line %d", msg, lineNo)
				}
				want := m.mentions
				if want == "" {
					want = name
				}
				if want != "-" && !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %q", msg, want)
				}
			})
		}
	}
}

// TestQuote shows values and holds back what is as long as a key.
func TestQuote(t *testing.T) {
	for _, tc := range []struct {
		in   string
		show bool
	}{
		{"51820", true},
		{"vpn.example.com:51820", true},
		{"[fd00::1]:51820", true},
		{"10.0.0.300/24", true},
		{strings.Repeat("a", 39), true},
		{strings.Repeat("a", 40), false},
		{"x " + kPriv[:43], false},
		{kPSK, false},
	} {
		if got := !strings.Contains(quote(tc.in), "not shown"); got != tc.show {
			t.Errorf("quote(%q) = %s, want shown %v", tc.in, quote(tc.in), tc.show)
		}
	}
}
