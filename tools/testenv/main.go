// Command testenv runs a real kube-apiserver backed by an embedded etcd on
// loopback for slotmap's tests, demo and benchmarks. The same binary is also
// kubectl: `testenv kubectl ...`, or invoked through a symlink named kubectl.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	base := strings.TrimSuffix(filepath.Base(os.Args[0]), ".exe")
	if base == "kubectl" {
		os.Exit(runKubectl(os.Args))
	}
	if len(os.Args) > 1 && os.Args[1] == "kubectl" {
		os.Exit(runKubectl(os.Args[1:]))
	}
	if len(os.Args) > 1 && (os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help") {
		fmt.Fprint(os.Stdout, usage)
		os.Exit(0)
	}
	os.Exit(runServe(os.Args[1:]))
}

const usage = `testenv: a local Kubernetes control plane (etcd + kube-apiserver) for tests.

Usage:
  testenv [serve flags]        start etcd + kube-apiserver, print one ready line on stdout
  testenv kubectl <args...>    run kubectl (also when invoked through a symlink named kubectl)

Serve flags:
  --data-dir DIR           parent directory for the temporary data dir (default: $TMPDIR)
  --keep-data-dir          do not remove the data dir on exit
  --exit-on-stdin-close    shut down when stdin reaches EOF (parent died)
  --no-controllers         do not run the namespace and garbage-collector controllers
  --log-file PATH          write etcd and apiserver logs here instead of stderr
  -v N                     apiserver log verbosity (default 0)

Signals: SIGTERM or SIGINT stop it and remove the data dir; SIGUSR1 compacts etcd
at the current revision (older resourceVersions then answer 410 Gone).
`
