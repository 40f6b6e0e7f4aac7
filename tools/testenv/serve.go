package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
)

const readyPrefix = "SLOTMAP_TESTENV_READY "

type readyInfo struct {
	Server           string `json:"server"`
	Kubeconfig       string `json:"kubeconfig"`
	TesterKubeconfig string `json:"testerKubeconfig"`
	DataDir          string `json:"dataDir"`
	PID              int    `json:"pid"`
}

type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func runServe(args []string) int {
	fs := flag.NewFlagSet("testenv", flag.ContinueOnError)
	dataParent := fs.String("data-dir", "", "parent directory for the temporary data dir")
	keep := fs.Bool("keep-data-dir", false, "do not remove the data dir on exit")
	exitOnStdinClose := fs.Bool("exit-on-stdin-close", false, "shut down when stdin reaches EOF")
	noControllers := fs.Bool("no-controllers", false, "do not run namespace and garbage-collector controllers")
	logFile := fs.String("log-file", "", "write logs here instead of stderr")
	verbosity := fs.Int("v", 0, "apiserver log verbosity")
	readyTimeout := fs.Duration("ready-timeout", 90*time.Second, "give up if not ready by then")
	var apiserverArgs stringList
	fs.Var(&apiserverArgs, "apiserver-arg", "extra kube-apiserver flag, e.g. --apiserver-arg=--v=2 (repeatable)")
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}

	// A dead parent closes our stdout/stderr pipes; without this, the next log
	// line would kill us with SIGPIPE before the data dir is removed.
	signal.Ignore(syscall.SIGPIPE)
	// Die with the parent: a crashed test runner must not leave us behind.
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0)
	if *exitOnStdinClose && os.Getppid() == 1 {
		fmt.Fprintln(os.Stderr, "testenv: parent already gone")
		return 1
	}

	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "testenv: open log file: %v\n", err)
			return 1
		}
		// Redirect fd 2 so klog, etcd's zap and panics all land in the file.
		if err := unix.Dup2(int(f.Fd()), 2); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: redirect stderr: %v\n", err)
			return 1
		}
	}
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("v", strconv.Itoa(*verbosity))

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)

	dataDir, err := os.MkdirTemp(*dataParent, "slotmap-testenv-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	cleanupDir := func() {
		if !*keep {
			_ = os.RemoveAll(dataDir)
		}
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sigs
		first := time.Now()
		cancel(fmt.Errorf("signal %v", s))
		for s := range sigs {
			// Ctrl-C reaches us and our parent, which then sends SIGTERM too:
			// only a later signal means "stop waiting".
			if time.Since(first) < 3*time.Second {
				continue
			}
			fmt.Fprintf(os.Stderr, "testenv: second signal (%v), exiting now\n", s)
			cleanupDir()
			os.Exit(1)
		}
	}()
	if *exitOnStdinClose {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel(errors.New("stdin closed"))
		}()
	}

	code := serve(ctx, dataDir, *noControllers, *readyTimeout, apiserverArgs)
	cleanupDir()
	return code
}

func serve(ctx context.Context, dataDir string, noControllers bool, readyTimeout time.Duration, extra []string) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "testenv: "+format+"\n", a...)
		return 1
	}
	started := time.Now()

	p, err := writePKI(dataDir)
	if err != nil {
		return fail("pki: %v", err)
	}
	adminToken, testerToken := randomToken(), randomToken()
	tokenFile := filepath.Join(dataDir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(tokenCSV(adminToken, testerToken)), 0o600); err != nil {
		return fail("%v", err)
	}

	etcd, etcdURL, err := startEtcd(dataDir, "stderr")
	if err != nil {
		return fail("%v", err)
	}
	stopEtcd := func() {
		done := make(chan struct{})
		go func() { etcd.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			fmt.Fprintln(os.Stderr, "testenv: etcd did not stop within 10s")
		}
	}
	klog.InfoS("etcd ready", "url", etcdURL, "elapsed", time.Since(started))

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		stopEtcd()
		return fail("listen: %v", err)
	}
	port := listener.Addr().(*net.TCPAddr).Port
	server := fmt.Sprintf("https://127.0.0.1:%d", port)

	apiCtx, apiCancel := context.WithCancel(ctx)
	defer apiCancel()
	apiDone, loopback, err := startAPIServer(apiCtx, apiserverConfig{
		dataDir: dataDir, etcdURL: etcdURL, pki: p, tokenFile: tokenFile,
		listener: listener, port: port, extraFlags: extra,
	})
	if err != nil {
		stopEtcd()
		return fail("%v", err)
	}
	shutdown := func() {
		apiCancel()
		select {
		case err := <-apiDone:
			if err != nil {
				fmt.Fprintf(os.Stderr, "testenv: apiserver stopped with: %v\n", err)
			}
		case <-time.After(20 * time.Second):
			fmt.Fprintln(os.Stderr, "testenv: apiserver did not stop within 20s")
		}
		stopEtcd()
	}

	info := readyInfo{
		Server:           server,
		Kubeconfig:       filepath.Join(dataDir, "admin.kubeconfig"),
		TesterKubeconfig: filepath.Join(dataDir, "tester.kubeconfig"),
		DataDir:          dataDir,
		PID:              os.Getpid(),
	}
	if err := writeKubeconfig(info.Kubeconfig, server, p.caPEM, adminUser, adminToken); err != nil {
		shutdown()
		return fail("%v", err)
	}
	if err := writeKubeconfig(info.TesterKubeconfig, server, p.caPEM, testerUser, testerToken); err != nil {
		shutdown()
		return fail("%v", err)
	}

	if err := waitReady(ctx, apiDone, server, p.caPEM, adminToken, readyTimeout); err != nil {
		shutdown()
		return fail("%v", err)
	}
	if !noControllers {
		if err := startControllers(apiCtx, loopback); err != nil {
			shutdown()
			return fail("controllers: %v", err)
		}
	}
	klog.InfoS("control plane ready", "server", server, "elapsed", time.Since(started))
	line, _ := json.Marshal(info)
	if _, err := fmt.Fprintf(os.Stdout, "%s%s\n", readyPrefix, line); err != nil {
		shutdown()
		return fail("write ready line: %v", err)
	}

	compact := make(chan os.Signal, 1)
	signal.Notify(compact, syscall.SIGUSR1)
	defer signal.Stop(compact)
	for {
		select {
		case <-compact:
			// Answered on stderr; tests observe the effect (410 Gone) instead.
			if rev, err := compactEtcd(ctx, etcd); err != nil {
				fmt.Fprintf(os.Stderr, "testenv: compact etcd at revision %d: %v\n", rev, err)
			} else {
				fmt.Fprintf(os.Stderr, "testenv: compacted etcd at revision %d\n", rev)
			}
		case <-ctx.Done():
			klog.InfoS("shutting down", "reason", context.Cause(ctx))
			shutdown()
			return 0
		case err := <-apiDone:
			stopEtcd()
			return fail("apiserver exited: %v", err)
		case err := <-etcd.Err():
			shutdown()
			return fail("etcd failed: %v", err)
		}
	}
}

// waitReady polls /readyz and then the "default" namespace, which the
// apiserver creates asynchronously after it reports ready.
func waitReady(ctx context.Context, apiDone <-chan error, server string, caPEM []byte, token string, timeout time.Duration) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	get := func(path string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, string(body)
	}
	deadline := time.Now().Add(timeout)
	last := ""
	for _, path := range []string{"/readyz", "/api/v1/namespaces/default"} {
		for {
			code, body := get(path)
			if code == http.StatusOK {
				break
			}
			last = fmt.Sprintf("GET %s: %d %s", path, code, body)
			if time.Now().After(deadline) {
				return fmt.Errorf("not ready after %v; last: %s", timeout, last)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("interrupted before ready: %v", context.Cause(ctx))
			case err := <-apiDone:
				return fmt.Errorf("apiserver exited before ready: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func writeKubeconfig(path, server string, caPEM []byte, user, token string) error {
	name := "slotmap-testenv"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = name
	return clientcmd.WriteToFile(*cfg, path)
}
