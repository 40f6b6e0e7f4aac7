// Command kube-controller-manager is k8s.io/kubernetes/cmd/kube-controller-manager, built at the k8s.io/kubernetes version of
// tools/testenv (see ../go.mod) for the local cluster's node (tools/node).
package main

import (
	"os"
	_ "time/tzdata" // CronJob time zones, as the upstream command

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
