package bench

import (
	"encoding/json"
	"fmt"
	"io"

	"pipeguard/bench/core"
	"pipeguard/bench/flood"
	"pipeguard/bench/loadgen"
	"pipeguard/bench/mem"
	"pipeguard/bench/netns"
	"pipeguard/bench/peers"
	"pipeguard/bench/soak"
)

// Report is everything one run of the harness measured: what the table
// shows and the JSON file holds. Each mode's part is nil when the mode
// did not run.
type Report struct {
	Machine  core.Machine    `json:"machine"`
	Settings core.Settings   `json:"settings"`
	Mem      *mem.Report     `json:"mem,omitempty"`
	Netns    *netns.Report   `json:"netns,omitempty"`
	Loadgen  *loadgen.Report `json:"loadgen,omitempty"`
	Soak     *soak.Report    `json:"soak,omitempty"`
	Flood    *flood.Report   `json:"flood,omitempty"`
	Peers    *peers.Report   `json:"peers,omitempty"`
}

// WriteJSON writes the report, indented, to w.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteJSONFile writes the report to the file at path.
func (r *Report) WriteJSONFile(path string) error {
	return core.WriteFile(path, r.WriteJSON)
}

// ReadReport decodes a report written by WriteJSON.
func ReadReport(rd io.Reader) (*Report, error) {
	var r Report
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReport, err)
	}
	return &r, nil
}

// Direction is which way traffic crosses the tunnel under test.
type Direction = core.Direction

// Directions of the in-memory and flood modes.
const (
	Inbound  = core.Inbound  // UDP in, decrypt, TUN out
	Outbound = core.Outbound // TUN in, encrypt, UDP out
	Both     = core.Both     // the two at once, the same count each way
)
