package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/lmittmann/tint"

	"pipeguard/cmd/headless-client/logfile"
)

// parseLevel turns --log-level into a slog level; kong's enum has already
// limited it to the four names, so an error here is a programming error
// and info is the safe answer.
func parseLevel(level string) slog.Level {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return slog.LevelInfo
	}
	return lvl
}

// newLogger builds the human-readable stderr logger: tint, with colour only
// when w is a terminal, so that journald and redirected files get plain
// text.
func newLogger(w io.Writer, level string) *slog.Logger {
	return slog.New(stderrHandler(w, parseLevel(level)))
}

func stderrHandler(w io.Writer, lvl slog.Level) slog.Handler {
	return tint.NewHandler(w, &tint.Options{
		Level:      lvl,
		TimeFormat: "15:04:05.000",
		NoColor:    !isTerminal(w),
	})
}

// withLogDir adds JSON lines in dir/pipeguard-<iface>.log (rotated by
// size) to the stderr logger, when dir is set. The returned closer closes
// the file; it is a no-op without dir.
func withLogDir(stderr io.Writer, level, dir, iface string) (*slog.Logger, io.Closer, error) {
	lvl := parseLevel(level)
	if dir == "" {
		return slog.New(stderrHandler(stderr, lvl)), io.NopCloser(nil), nil
	}
	f, err := logfile.Open(dir, "pipeguard-"+iface, logfile.DefaultMaxSize, logfile.DefaultKeep)
	if err != nil {
		return nil, nil, fmt.Errorf("log directory %s: %w", dir, err)
	}
	// Rotation trouble is told on stderr alone: the file is what fails.
	toStderr := slog.New(stderrHandler(stderr, lvl)).With("log_file", f.Path())
	f.OnError = func(err error) {
		if err != nil {
			toStderr.Warn("log file rotation failed; writing on to the current file, past its size limit", "err", err)
		} else {
			toStderr.Info("log file rotation works again")
		}
	}
	h := slog.NewMultiHandler(stderrHandler(stderr, lvl), slog.NewJSONHandler(f, &slog.HandlerOptions{Level: lvl}))
	return slog.New(h), f, nil
}
