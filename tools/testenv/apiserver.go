package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/rest"
	basecompatibility "k8s.io/component-base/compatibility"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	"k8s.io/kubernetes/cmd/kube-apiserver/app/options"
)

const (
	serviceCIDR = "10.0.0.0/24"
	serviceIP   = "10.0.0.1"
)

type apiserverConfig struct {
	dataDir    string
	etcdURL    string
	pki        *pki
	tokenFile  string
	listener   net.Listener
	port       int
	extraFlags []string
}

// startAPIServer builds kube-apiserver the way its own command does (options
// -> config -> server chain), but with our context instead of the
// process-global signal handler, so the caller controls shutdown.
// It returns a channel that receives Run's result, and the loopback config.
func startAPIServer(ctx context.Context, c apiserverConfig) (<-chan error, *rest.Config, error) {
	s := options.NewServerRunOptions()
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	for _, f := range s.Flags().FlagSets {
		fs.AddFlagSet(f)
	}
	args := []string{
		"--etcd-servers=" + c.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--tls-cert-file=" + c.pki.certFile,
		"--tls-private-key-file=" + c.pki.keyFile,
		"--cert-dir=" + filepath.Join(c.dataDir, "certs"),
		"--token-auth-file=" + c.tokenFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + c.pki.saKeyFile,
		"--service-account-signing-key-file=" + c.pki.saKeyFile,
		"--service-cluster-ip-range=" + serviceCIDR,
		// No kubelets or cloud here; the "kubernetes" Service endpoints would
		// point at a loopback address that nothing in-cluster could reach.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		"--enable-priority-and-fairness=true",
	}
	args = append(args, c.extraFlags...)
	if err := fs.Parse(args); err != nil {
		return nil, nil, fmt.Errorf("kube-apiserver flags: %w", err)
	}
	s.SecureServing.Listener = c.listener
	s.SecureServing.BindPort = c.port

	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, nil, err
	}
	featureGate := s.GenericServerRunOptions.ComponentGlobalsRegistry.FeatureGateFor(basecompatibility.DefaultKubeComponent)
	if err := logsapi.ValidateAndApply(s.Logs, featureGate); err != nil {
		return nil, nil, err
	}
	rest.SetDefaultWarningHandler(rest.NoWarnings{})

	completed, err := s.Complete(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("complete options: %w", err)
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return nil, nil, fmt.Errorf("validate options: %w", utilerrors.NewAggregate(errs))
	}
	config, err := app.NewConfig(completed)
	if err != nil {
		return nil, nil, fmt.Errorf("apiserver config: %w", err)
	}
	cc, err := config.Complete()
	if err != nil {
		return nil, nil, fmt.Errorf("complete config: %w", err)
	}
	server, err := app.CreateServerChain(cc)
	if err != nil {
		return nil, nil, fmt.Errorf("create server chain: %w", err)
	}
	prepared, err := server.PrepareRun()
	if err != nil {
		return nil, nil, fmt.Errorf("prepare run: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- prepared.Run(ctx)
		close(done)
	}()
	return done, rest.CopyConfig(server.GenericAPIServer.LoopbackClientConfig), nil
}

func tokenCSV(adminToken, testerToken string) string {
	var b strings.Builder
	// token,user,uid,"group1,group2"
	fmt.Fprintf(&b, "%s,%s,%s,\"%s\"\n", adminToken, adminUser, "slotmap-admin-uid", "system:masters")
	fmt.Fprintf(&b, "%s,%s,%s,\"%s\"\n", testerToken, testerUser, "slotmap-tester-uid", testerGroup)
	return b.String()
}

const (
	adminUser   = "slotmap-admin"
	testerUser  = "slotmap-tester"
	testerGroup = "slotmap:testers"
)
