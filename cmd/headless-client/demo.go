package main

// demoCmd shows a working tunnel on a built-in default: two PipeGuard
// endpoints in private network namespaces, ping and TCP between them, and
// everything removed again, also on Ctrl-C. It is the README's first
// command (`make demo`).
type demoCmd struct {
	Engine string `help:"Dataplane engine of both tunnels: pipeline or sequential." default:"pipeline" enum:"pipeline,sequential"`
	Bytes  int64  `help:"Bytes of the TCP transfer each way." default:"20000000"`
}
