package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// PprofMux returns a ServeMux with the net/http/pprof endpoints under
// /debug/pprof/ (index, cmdline, profile, symbol, trace, and the named
// profiles through the index). CPU profiles taken there carry the
// engine's "stage" labels: `go tool pprof -tags` splits them by stage.
func PprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Timeouts of a Server. A CPU profile or trace runs for as long as the
// client asks (?seconds=N, 30 by default), so writes get no timeout.
const (
	readHeaderTimeout = 5 * time.Second
	idleTimeout       = 60 * time.Second
)

// ShutdownGrace is how long Serve lets requests in flight finish once it
// is told to stop; then it cuts every connection. A scrape takes
// milliseconds. It must stay well below the client's stop timeout (2 s):
// an idle connection, which http.Server.Shutdown waits for up to 5 s,
// or a 30 s profile must never make a stop late.
const ShutdownGrace = 500 * time.Millisecond

// Server serves one handler on one listening address. Make one with
// Listen, then call Serve once; the zero value is not usable.
type Server struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

// Listen binds addr (host:port; port 0 picks a free one) at once, so that
// a bad or busy address is an error at start-up rather than later. log
// gets the server's start and stop; nil discards them.
func Listen(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &Server{
		ln:  ln,
		srv: &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout},
		log: log,
	}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until ctx ends, then shuts down, giving requests in flight
// ShutdownGrace to finish, and returns nil once it has; or returns the error
// that stopped it. It has the supervisor's Serve(ctx) error contract, and
// closes the listener on return.
func (s *Server) Serve(ctx context.Context) error {
	s.log.Info("http endpoint up", "addr", s.ln.Addr())
	defer s.log.Info("http endpoint down", "addr", s.ln.Addr())
	shutDown := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(shutDown)
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
		defer cancel()
		if err := s.srv.Shutdown(sctx); err != nil {
			s.srv.Close() // an idle connection or a long profile: cut it
		}
	})
	err := s.srv.Serve(s.ln) // returns at once when Shutdown starts
	if !stop() {
		<-shutDown // the shutdown started: wait until it is done
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close releases the listener of a Server that will not Serve: on a
// failed start-up, after Listen succeeded.
func (s *Server) Close() error { return s.ln.Close() }

// ListenEndpoints binds the endpoints a command's flags ask for: src's
// metrics at metricsAddr and the pprof endpoints at pprofAddr, each
// skipped when its address is empty. On failure it releases what it
// bound and says which endpoint failed.
func ListenEndpoints(src Source, metricsAddr, pprofAddr string, log *slog.Logger) ([]*Server, error) {
	var out []*Server
	for _, ep := range []struct {
		what, addr string
		h          func() http.Handler
	}{
		{"metrics", metricsAddr, func() http.Handler { return NewMux(src) }},
		{"pprof", pprofAddr, func() http.Handler { return PprofMux() }},
	} {
		if ep.addr == "" {
			continue
		}
		s, err := Listen(ep.addr, ep.h(), log.With("endpoint", ep.what))
		if err != nil {
			for _, prev := range out {
				prev.Close()
			}
			return nil, fmt.Errorf("metrics: %s endpoint %s: %w", ep.what, ep.addr, err)
		}
		log.Info("serving "+ep.what, "addr", s.Addr())
		out = append(out, s)
	}
	return out, nil
}
