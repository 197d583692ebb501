package ifsetup

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"pipeguard/cmd/headless-client/safedir"
	"pipeguard/cmd/internal/netnstest"
	"pipeguard/tunio"
)

// otherUID stands for the service user: a uid no account uses.
const otherUID = 64000

// The two rules a full tunnel adds for IPv4, with table and mark 51820.
var (
	markRule     = tunio.Rule{Table: 51820, Mark: 51820, Invert: true}
	suppressRule = tunio.Rule{Table: tunio.MainTable, SuppressDefault: true}
)

func TestStateCheck(t *testing.T) {
	v6 := markRule
	v6.V6 = true
	for _, tc := range []struct {
		name string
		st   state
		ok   bool
	}{
		{"a full tunnel's", state{Interface: "pg0", Rules: []tunio.Rule{markRule, suppressRule, v6}}, true},
		{"none yet", state{Interface: "pg0", Rules: nil}, true},
		{"another interface's", state{Interface: "pg1", Rules: []tunio.Rule{markRule}}, false},
		{"too many", state{Interface: "pg0", Rules: slices.Repeat([]tunio.Rule{markRule}, maxStateRules+1)}, false},
		{"two runs' while a start takes over", state{Interface: "pg0", Rules: slices.Repeat([]tunio.Rule{markRule, suppressRule}, 4)}, true},
		{"unreachable routes", state{Interface: "pg0", Rules: []tunio.Rule{markRule}, Routes: []failRoute{{Table: 51820}, {V6: true, Table: 51820}}}, true},
		{"routes alone (killed between the two)", state{Interface: "pg0", Routes: []failRoute{{Table: 51820}}}, true},
		{"too many routes", state{Interface: "pg0", Routes: slices.Repeat([]failRoute{{Table: 51820}}, maxStateRoutes+1)}, false},
		{"a route in the main table", state{Interface: "pg0", Routes: []failRoute{{Table: tunio.MainTable}}}, false},
		{"a route in the local table", state{Interface: "pg0", Routes: []failRoute{{V6: true, Table: 255}}}, false},
		{"a route in no table", state{Interface: "pg0", Routes: []failRoute{{Table: 0}}}, false},
		{"mark not its table", state{Interface: "pg0", Rules: []tunio.Rule{{Table: 51820, Mark: 1, Invert: true}}}, false},
		{"not inverted", state{Interface: "pg0", Rules: []tunio.Rule{{Table: 51820, Mark: 51820}}}, false},
		{"the main table", state{Interface: "pg0", Rules: []tunio.Rule{{Table: tunio.MainTable, Mark: tunio.MainTable, Invert: true}}}, false},
		{"the local table", state{Interface: "pg0", Rules: []tunio.Rule{{Table: 255, Mark: 255, Invert: true}}}, false},
		{"a priority", state{Interface: "pg0", Rules: []tunio.Rule{{Table: 51820, Mark: 51820, Invert: true, Priority: 0}, {Table: 51820, Mark: 51820, Invert: true, Priority: 100}}}, false},
		{"suppress in another table", state{Interface: "pg0", Rules: []tunio.Rule{{Table: 100, SuppressDefault: true}}}, false},
		{"suppress with a mark", state{Interface: "pg0", Rules: []tunio.Rule{{Table: tunio.MainTable, SuppressDefault: true, Mark: 1}}}, false},
		{"a plain lookup", state{Interface: "pg0", Rules: []tunio.Rule{{Table: 100}}}, false},
	} {
		if err := tc.st.check("pg0"); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// TestStateFileLinks: links planted at the state file, and at the name
// of the temporary file earlier versions used, are replaced, never
// written through; a state directory of another uid is refused.
func TestStateFileLinks(t *testing.T) {
	netnstest.RequireRoot(t)
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	const content = "root's own file\n"
	os.WriteFile(victim, []byte(content), 0o644)
	dir := filepath.Join(base, "state")
	os.Mkdir(dir, 0o700)
	path := filepath.Join(dir, "rules.pg0.json")
	for _, l := range []string{path, path + ".new"} {
		if err := os.Symlink(victim, l); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := loadState(path, "pg0"); !errors.Is(err, safedir.ErrUntrusted) {
		t.Errorf("loadState through a link: %v, want ErrUntrusted", err)
	}
	if err := saveState(path, state{Interface: "pg0", Rules: []tunio.Rule{markRule}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != content {
		t.Errorf("the victim was written: %q", b)
	}
	if st, err := loadState(path, "pg0"); err != nil || len(st.Rules) != 1 {
		t.Errorf("read back: %+v %v", st, err)
	}
	if err := os.Chown(dir, otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
	if err := saveState(path, state{Interface: "pg0"}); !errors.Is(err, safedir.ErrUntrusted) {
		t.Errorf("saveState in another uid's directory: %v, want ErrUntrusted", err)
	}
	if _, err := loadState(path, "pg0"); !errors.Is(err, safedir.ErrUntrusted) {
		t.Errorf("loadState in another uid's directory: %v, want ErrUntrusted", err)
	}
}

// TestPlantedRulesFile: a start never removes policy rules that a state
// file it must not trust lists: one in a directory of another uid, one
// of another interface, one that lists a rule no full tunnel adds. The
// rules stay, and so does the file the other uid owns.
func TestPlantedRulesFile(t *testing.T) {
	netnstest.RequireRoot(t)
	for _, tc := range []struct {
		name  string
		owner int
		iface string // the file's "interface"; "" for the tunnel's own
		rule  string // `ip rule add` arguments of the listed rule
	}{
		{"another uid's directory", otherUID, "", "not fwmark 0xd00d table 53261"},
		{"another interface's file", 0, "pg-other", "not fwmark 0xd00d table 53261"},
		{"a rule no full tunnel adds", 0, "", "from all table 100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := netnstest.New(t)
			ns.MustRun(t, "ip", append([]string{"rule", "add"}, strings.Fields(tc.rule)...)...)
			before := rulesOf(t, ns)
			name, _ := tun(t, ns)
			dir := filepath.Join(t.TempDir(), "state")
			os.Mkdir(dir, 0o700)
			path := filepath.Join(dir, "rules."+name+".json")
			ru := tunio.Rule{Table: 53261, Mark: 0xd00d, Invert: true}
			if tc.rule == "from all table 100" {
				ru = tunio.Rule{Table: 100}
			}
			iface := tc.iface
			if iface == "" {
				iface = name
			}
			b, _ := json.Marshal(state{Interface: iface, Rules: []tunio.Rule{ru, ru}})
			os.WriteFile(path, b, 0o600)
			for _, p := range []string{path, dir} {
				if err := os.Chown(p, tc.owner, tc.owner); err != nil {
					t.Fatal(err)
				}
			}
			i, err := up(ns, Config{Name: name, MTU: 1280, StateFile: path})
			if err != nil {
				t.Fatal(err)
			}
			if got := rulesOf(t, ns); got != before {
				t.Errorf("rules after Up:\n%s\nwant\n%s", got, before)
			}
			if err := ns.Do(i.Down); err != nil && tc.owner == 0 {
				t.Fatal(err)
			}
			if _, err := os.Lstat(path); (err == nil) != (tc.owner != 0) {
				t.Errorf("the other uid's file: %v, want it kept (and root's refused one removed)", err)
			}
		})
	}
}

// FuzzStateCheck feeds arbitrary state files to what a start reads back:
// nothing panics, and a state it accepts is the interface's own and lists
// at most maxStateRules rules, each one of the two shapes a full tunnel
// adds, and at most maxStateRoutes unreachable routes, none in a table of
// the kernel's.
func FuzzStateCheck(f *testing.F) {
	good, _ := json.Marshal(state{Interface: "pg0", Rules: []tunio.Rule{markRule, suppressRule}})
	f.Add(good)
	f.Add([]byte(`{"interface":"pg0","rules":[{"Table":100}]}`))
	f.Add([]byte(`{"interface":"pg1","rules":[]}`))
	f.Add([]byte(`{"interface":"pg0","rules":[{"Table":254,"SuppressDefault":true,"Priority":5}]}`))
	f.Add([]byte(`{"interface":"pg0","rules":[],"routes":[{"v6":true,"table":51820},{"v6":false,"table":254}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var st state
		if json.Unmarshal(b, &st) != nil || st.check("pg0") != nil {
			return
		}
		if st.Interface != "pg0" || len(st.Rules) > maxStateRules {
			t.Fatalf("accepted %+v", st)
		}
		for _, ru := range st.Rules {
			mark := ru.Invert && ru.Mark == uint32(ru.Table) && ru.Table > 0 && !ru.SuppressDefault
			suppress := ru.SuppressDefault && ru.Table == tunio.MainTable && ru.Mark == 0 && !ru.Invert
			if ru.Priority != 0 || mark == suppress {
				t.Fatalf("accepted rule %+v", ru)
			}
		}
		if len(st.Routes) > maxStateRoutes {
			t.Fatalf("accepted %d routes", len(st.Routes))
		}
		for _, r := range st.Routes {
			if r.Table <= 0 || r.Table == 253 || r.Table == tunio.MainTable || r.Table == 255 {
				t.Fatalf("accepted route %+v", r)
			}
		}
	})
}
