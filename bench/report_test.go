package bench

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// readReportFile reads the JSON report at path.
func readReportFile(t *testing.T, path string) *Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := ReadReport(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

func TestReportJSONRoundTrip(t *testing.T) {
	r := readReportFile(t, recordedMem)
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r, back) {
		t.Error("report changed in a JSON round trip")
	}
	if _, err := ReadReport(strings.NewReader(`{"machine":{},"surprise":1}`)); !errors.Is(err, ErrReport) {
		t.Errorf("unknown field: err %v, want ErrReport", err)
	}
}
