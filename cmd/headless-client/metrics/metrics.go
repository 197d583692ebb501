// Package metrics serves a running tunnel's counters to Prometheus, in the
// text exposition format (version 0.0.4, written by hand: a few dozen
// lines do not need a client library), and the pprof endpoints; each on
// its own address with its own ServeMux, never http.DefaultServeMux.
//
// Wiring, for a tunnel t (a *stages.Tunnel is a Source):
//
//	srv, err := metrics.Listen("127.0.0.1:9586", metrics.NewMux(t), log)
//	// then, supervised or in a goroutine: srv.Serve(ctx)
//	dbg, err := metrics.Listen("127.0.0.1:6060", metrics.PprofMux(), log)
package metrics

import (
	"bufio"
	"encoding/base64"
	"io"
	"iter"
	"net/http"
	"runtime"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"time"

	"pipeguard/noise"
	"pipeguard/stages"
)

// Source is what the metrics are read from; *stages.Tunnel is one. Both
// methods must be safe to call while the tunnel runs. Stats is called
// once per scrape; AllPeers once per peer family, so that a scrape of
// many peers streams them and never holds them all.
type Source interface {
	Stats() []stages.StageStats
	AllPeers() iter.Seq[stages.PeerStatus]
}

// A tunnel is a Source.
var _ Source = (*stages.Tunnel)(nil)

// ContentType is the exposition format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler returns an http.Handler that answers GET and HEAD with src's
// metrics. It is safe for concurrent scrapes.
func Handler(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "metrics: method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", ContentType)
		if r.Method == http.MethodHead {
			return
		}
		WriteText(w, src) // a failed write means the scraper went away
	})
}

// NewMux returns a ServeMux serving src's metrics at /metrics.
func NewMux(src Source) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler(src))
	return mux
}

// WriteText writes src's metrics to w in the text exposition format.
func WriteText(w io.Writer, src Source) error {
	bw := bufio.NewWriter(w)
	e := &encoder{w: bw}
	writeStages(e, src.Stats())
	writeQueues(e, src)
	writePeers(e, src)
	writeRuntime(e)
	writeSchedLatency(e)
	return bw.Flush()
}

// writeRuntime writes the process's figures under the names Prometheus's
// Go collector uses, so that dashboards and the soak benchmark (which
// watches for leaks) find them where they look. The heap figures tell a
// leak from garbage that waits for the next GC cycle: the tunnel's queues
// make its heap goal large, so cycles are rare, and resident memory grows
// between them. They come from runtime/metrics, which does not stop the
// world as runtime.ReadMemStats does.
func writeRuntime(e *encoder) {
	e.family("go_goroutines", "gauge", "Number of goroutines that currently exist.")
	e.sample("go_goroutines", nil, uint64(runtime.NumGoroutine()))
	var rm [len(runtimeFamilies)]rtmetrics.Sample
	for i, f := range runtimeFamilies {
		rm[i].Name = f.key
	}
	rtmetrics.Read(rm[:])
	for i, f := range runtimeFamilies {
		if rm[i].Value.Kind() != rtmetrics.KindUint64 {
			continue // unknown to this Go version
		}
		e.family(f.name, f.typ, f.help)
		e.sample(f.name, nil, rm[i].Value.Uint64())
	}
}

// runtimeFamilies are the figures writeRuntime takes from runtime/metrics.
var runtimeFamilies = [...]struct{ key, name, typ, help string }{
	{"/memory/classes/heap/objects:bytes", "go_memstats_heap_alloc_bytes", "gauge", "Bytes of heap objects, live and not yet swept."},
	{"/gc/heap/goal:bytes", "go_memstats_next_gc_bytes", "gauge", "Heap size at which the next GC cycle ends."},
	{"/gc/cycles/total:gc-cycles", "go_gc_cycles_total", "counter", "GC cycles completed."},
}

func writeStages(e *encoder, st []stages.StageStats) {
	stageLabel := func(s stages.StageStats) []string { return []string{"stage", s.Name} }
	e.family("pipeguard_stage_instances", "gauge", "Goroutines the stage runs as (a worker pool has several).")
	for _, s := range st {
		e.sample("pipeguard_stage_instances", stageLabel(s), uint64(s.Instances))
	}
	e.family("pipeguard_stage_packets_total", "counter", "Packets the stage handed on.")
	for _, s := range st {
		e.sample("pipeguard_stage_packets_total", stageLabel(s), s.Packets)
	}
	e.family("pipeguard_stage_bytes_total", "counter", "Bytes of the packets the stage handed on (inner bytes on the TUN side, datagram bytes on the UDP side).")
	for _, s := range st {
		e.sample("pipeguard_stage_bytes_total", stageLabel(s), s.Bytes)
	}
	e.family("pipeguard_stage_drops_total", "counter", "Packets the stage dropped, by reason.")
	reasons := stages.DropReasons()
	for _, s := range st {
		for _, r := range reasons {
			e.sample("pipeguard_stage_drops_total", []string{"stage", s.Name, "reason", r.String()}, s.Drops[r])
		}
	}
	e.family("pipeguard_stage_keepalives_total", "counter", "Keepalives the stage received (route-in, inbound) or sent (timers).")
	for _, s := range st {
		e.sample("pipeguard_stage_keepalives_total", stageLabel(s), s.Keepalives)
	}
	e.family("pipeguard_stage_queue_depth", "gauge", "Packets waiting in the stage's input queues.")
	for _, s := range st {
		e.sample("pipeguard_stage_queue_depth", stageLabel(s), uint64(s.QueueDepth))
	}
	e.family("pipeguard_stage_queue_capacity", "gauge", "Capacity of the stage's input queues.")
	for _, s := range st {
		e.sample("pipeguard_stage_queue_capacity", stageLabel(s), uint64(s.QueueCap))
	}
	e.family("pipeguard_stage_restarts_total", "counter", "Times the supervisor restarted one of the stage's goroutines.")
	for _, s := range st {
		e.sample("pipeguard_stage_restarts_total", stageLabel(s), s.Restarts)
	}
}

// peerFamilies are the per-peer series, one sample a peer each, in the
// order writePeers writes their values. `wg show transfer` counts every
// datagram; the metrics keep the transport messages (the traffic) apart
// from the handshakes, and the two families of a direction add up to
// wg's figure.
var peerFamilies = [...]struct{ name, typ, help string }{
	{"pipeguard_peer_last_handshake_seconds", "gauge", "Unix time of the peer's last completed handshake; 0 if none yet."},
	{"pipeguard_peer_receive_bytes_total", "counter", "Bytes of transport messages (data and keepalives) received from the peer; with pipeguard_peer_handshake_receive_bytes_total, what wg show transfer counts."},
	{"pipeguard_peer_transmit_bytes_total", "counter", "Bytes of transport messages (data and keepalives) sent to the peer; with pipeguard_peer_handshake_transmit_bytes_total, what wg show transfer counts."},
	{"pipeguard_peer_handshake_receive_bytes_total", "counter", "Bytes of handshake initiations and responses received from the peer."},
	{"pipeguard_peer_handshake_transmit_bytes_total", "counter", "Bytes of handshake initiations and responses sent to the peer."},
	{"pipeguard_peer_handshakes_total", "counter", "Handshakes completed with the peer."},
}

// writePeers writes the per-peer families, a pass over the peers each,
// and the number of peers. A pass allocates nothing per peer (the key is
// encoded into the encoder's scratch), so a scrape of 100,000 peers
// leaves no more garbage than one of ten; its time and size grow with
// the peers, about 100 bytes a peer a family.
func writePeers(e *encoder, src Source) {
	var n uint64
	for i, f := range peerFamilies {
		e.family(f.name, f.typ, f.help)
		for p := range src.AllPeers() {
			e.peerSeries(f.name, &p.PublicKey)
			switch i {
			case 0:
				n++
				e.float(unixSeconds(p.LastHandshake))
			case 1:
				e.uint(p.RxBytes - p.RxHandshakeBytes)
			case 2:
				e.uint(p.TxBytes - p.TxHandshakeBytes)
			case 3:
				e.uint(p.RxHandshakeBytes)
			case 4:
				e.uint(p.TxHandshakeBytes)
			case 5:
				e.uint(p.Handshakes)
			}
		}
	}
	e.family("pipeguard_peers", "gauge", "Configured peers.")
	e.sample("pipeguard_peers", nil, n)
}

// encoder writes exposition lines. The zero value is not usable; it is
// used by one goroutine. It writes straight into w, numbers through
// scratch, so that a scrape leaves little garbage: Prometheus (or the
// soak benchmark) scrapes for months, and between the tunnel's rare GC
// cycles every byte of garbage is resident memory.
type encoder struct {
	w       *bufio.Writer
	scratch [32]byte
	key     [44]byte // a public key in base64
}

// family writes the HELP and TYPE lines that precede a family's samples.
func (e *encoder) family(name, typ, help string) {
	e.w.WriteString("# HELP ")
	e.w.WriteString(name)
	e.w.WriteByte(' ')
	helpEscaper.WriteString(e.w, help)
	e.w.WriteString("\n# TYPE ")
	e.w.WriteString(name)
	e.w.WriteByte(' ')
	e.w.WriteString(typ)
	e.w.WriteByte('\n')
}

// sample writes one sample with an integer value; labels alternate names
// and values.
func (e *encoder) sample(name string, labels []string, value uint64) {
	e.series(name, labels)
	e.uint(value)
}

// uint and float write a sample's value and end its line.
func (e *encoder) uint(v uint64) {
	e.w.Write(strconv.AppendUint(e.scratch[:0], v, 10))
	e.w.WriteByte('\n')
}

func (e *encoder) float(v float64) {
	e.w.Write(strconv.AppendFloat(e.scratch[:0], v, 'f', -1, 64))
	e.w.WriteByte('\n')
}

// peerSeries writes a per-peer sample's name and its public_key label,
// and the space before its value. Base64 needs no escaping.
func (e *encoder) peerSeries(name string, key *noise.PublicKey) {
	e.w.WriteString(name)
	e.w.WriteString(`{public_key="`)
	base64.StdEncoding.Encode(e.key[:], key[:])
	e.w.Write(e.key[:])
	e.w.WriteString(`"} `)
}

// series writes a sample's name and labels, and the space before its
// value.
func (e *encoder) series(name string, labels []string) { e.suffixed(name, "", labels) }

// suffixed is series for the name family+suffix (a histogram's
// _bucket, _sum, _count), written without joining the two.
func (e *encoder) suffixed(family, suffix string, labels []string) {
	e.w.WriteString(family)
	e.w.WriteString(suffix)
	for i := 0; i+1 < len(labels); i += 2 {
		if i == 0 {
			e.w.WriteByte('{')
		} else {
			e.w.WriteByte(',')
		}
		e.w.WriteString(labels[i])
		e.w.WriteString(`="`)
		labelEscaper.WriteString(e.w, labels[i+1])
		e.w.WriteByte('"')
	}
	if len(labels) > 0 {
		e.w.WriteByte('}')
	}
	e.w.WriteByte(' ')
}

// The format's escapes: in HELP text a backslash and a line feed; in label
// values those and the double quote.
var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// unixSeconds is t as Unix time in seconds; 0 for the zero time.
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
