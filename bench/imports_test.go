package bench

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// modes are the packages that each measure one thing; a package under
// one of them (bench/loadgen/rawudp) is part of that mode.
var modes = []string{"mem", "netns", "loadgen", "soak", "flood"}

// TestImportsOneWay reads the imports of every Go file under bench/ and
// checks the layering: a mode imports the core and its own packages and
// never another mode or package bench; the core imports no mode and not
// package bench; nothing here imports cmd. Every package says in its doc
// comment what it is.
func TestImportsOneWay(t *testing.T) {
	const module = "pipeguard/bench"
	part := func(dir string) string { // "", "core" or a mode
		first, _, _ := strings.Cut(dir, "/")
		switch {
		case dir == ".":
			return ""
		case first == "core":
			return "core"
		}
		return first
	}
	documented := map[string]bool{}
	seen := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "results") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(p))
		seen[dir] = true
		if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package "+f.Name.Name+" ") {
			documented[dir] = true
		}
		from := part(dir)
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(ip, "pipeguard/cmd") {
				t.Errorf("%s imports %s: nothing imports cmd", p, ip)
			}
			rest, ok := strings.CutPrefix(ip, module)
			if !ok {
				continue
			}
			to := part(strings.TrimPrefix(rest, "/"))
			if rest == "" {
				to = ""
			}
			switch {
			case from == "": // package bench puts the modes together
			case to == "" && !strings.HasSuffix(f.Name.Name, "_test"):
				t.Errorf("%s imports %s: only cmd/bench uses package bench", p, ip)
			case from == "core" && to != "core":
				t.Errorf("%s imports %s: the core imports no mode", p, ip)
			case from != "core" && to != "core" && to != from:
				t.Errorf("%s imports %s: a mode uses the core, never another mode", p, ip)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range modes {
		if !seen[m] {
			t.Errorf("no mode package %s", path.Join(module, m))
		}
	}
	for dir := range seen {
		if !documented[dir] {
			t.Errorf("package %s has no doc comment saying what it is", path.Join(module, dir))
		}
	}
}
