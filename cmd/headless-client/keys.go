package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"pipeguard/cmd/headless-client/lifecycle"
	"pipeguard/noise"
)

// runEnv is what every command gets: where to log, read and print.
type runEnv struct {
	log      *slog.Logger
	logLevel string // --log-level, for commands that build their own loggers
	signals  *lifecycle.Signals
	stdin    io.Reader
	stdout   io.Writer
	stderr   io.Writer
}

type genkeyCmd struct{}

func (genkeyCmd) Run(env *runEnv) error {
	k, err := noise.GeneratePrivateKey()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(env.stdout, k.String())
	return err
}

type pubkeyCmd struct{}

// errKeyInput is returned for anything on stdin that is not one key.
var errKeyInput = errors.New("pubkey: stdin must hold one base64 private key (44 characters, as made by genkey)")

func (pubkeyCmd) Run(env *runEnv) error {
	// A key is 44 characters; reading a little more tells a key followed by
	// junk from a key, without reading an unbounded stream.
	line, err := io.ReadAll(io.LimitReader(bufio.NewReader(env.stdin), 128))
	if err != nil {
		return err
	}
	k, err := noise.ParsePrivateKey(strings.TrimSpace(string(line)))
	if err != nil {
		return errKeyInput
	}
	_, err = fmt.Fprintln(env.stdout, k.Public().String())
	return err
}
