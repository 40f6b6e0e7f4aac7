// Command forward copies TCP connections between network namespaces, so that the node's private
// network namespace and the host's loopback reach each other without any route or address
// shared between them:
//
//	forward LISTEN_NETNS LISTEN_ADDR CONNECT_NETNS CONNECT_ADDR [more quadruples...]
//
// A netns is a path such as /run/netns/NAME, or "-" for the namespace forward runs in. Each
// listener is opened in its namespace, and each connection it accepts is dialed to CONNECT_ADDR
// from CONNECT_NETNS (a socket stays in the namespace it was created in). After every listener
// is open, forward prints "ready" on stdout. It runs until a signal ends it, or its parent dies.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

type rule struct{ listenNS, listenAddr, connectNS, connectAddr string }

func main() {
	args := os.Args[1:]
	if len(args) == 0 || len(args)%4 != 0 {
		fmt.Fprintln(os.Stderr, "usage: forward LISTEN_NETNS LISTEN_ADDR CONNECT_NETNS CONNECT_ADDR [...]")
		os.Exit(2)
	}
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0)
	var rules []rule
	for i := 0; i < len(args); i += 4 {
		rules = append(rules, rule{args[i], args[i+1], args[i+2], args[i+3]})
	}
	listeners := make([]net.Listener, len(rules))
	for i, r := range rules {
		err := inNetns(r.listenNS, func() (err error) {
			listeners[i], err = net.Listen("tcp", r.listenAddr)
			return err
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "forward: listen on %s in %s: %v\n", r.listenAddr, r.listenNS, err)
			os.Exit(1)
		}
	}
	for i, r := range rules {
		go serve(listeners[i], r)
	}
	fmt.Println("ready")
	select {}
}

func serve(l net.Listener, r rule) {
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintf(os.Stderr, "forward: accept on %s: %v\n", r.listenAddr, err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go pipe(c, r)
	}
}

func pipe(in net.Conn, r rule) {
	defer in.Close()
	var out net.Conn
	err := inNetns(r.connectNS, func() (err error) {
		out, err = net.DialTimeout("tcp", r.connectAddr, 10*time.Second)
		return err
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "forward: %s -> %s: %v\n", r.listenAddr, r.connectAddr, err)
		return
	}
	defer out.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	copyHalf := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		// Pass the end of one direction on, so that half-closed protocols still finish.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	go copyHalf(out, in)
	go copyHalf(in, out)
	wg.Wait()
}

// inNetns runs fn on an OS thread switched into the network namespace at path ("-": the current
// one). The thread is switched back afterwards; if that fails it is left locked, so the Go
// runtime retires it instead of reusing it in the wrong namespace.
func inNetns(path string, fn func() error) error {
	if path == "-" {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer unix.Close(orig)
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", path, err)
	}
	fnErr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("restore netns: %w", err)
	}
	runtime.UnlockOSThread()
	return fnErr
}
