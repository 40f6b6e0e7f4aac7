package main

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/informers"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/controller-manager/pkg/informerfactory"
	"k8s.io/kubernetes/pkg/controller/garbagecollector"
	"k8s.io/kubernetes/pkg/controller/namespace"
)

// startControllers runs the two kube-controller-manager loops that tests
// notice when missing: namespace deletion (else namespaces stay Terminating
// forever) and garbage collection (ownerReferences cascade). Nothing else from
// the controller manager is needed without nodes and pods.
func startControllers(ctx context.Context, loopback *rest.Config) error {
	cfg := rest.CopyConfig(loopback)
	cfg.QPS = 200
	cfg.Burst = 400
	rest.AddUserAgent(cfg, "slotmap-testenv-controllers")
	client, err := clientset.NewForConfig(cfg)
	if err != nil {
		return err
	}
	metadataClient, err := metadata.NewForConfig(cfg)
	if err != nil {
		return err
	}
	sharedInformers := informers.NewSharedInformerFactory(client, 0)
	metadataInformers := metadatainformer.NewSharedInformerFactory(metadataClient, 0)

	nsController := namespace.NewNamespaceController(
		ctx, client, metadataClient,
		client.Discovery().ServerPreferredNamespacedResources,
		sharedInformers.Core().V1().Namespaces(),
		5*time.Minute, v1.FinalizerKubernetes)

	restMapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery()))
	restMapper.Reset()
	started := make(chan struct{})
	close(started)
	gc, err := garbagecollector.NewGarbageCollector(ctx, client, metadataClient, restMapper,
		garbagecollector.DefaultIgnoredResources(),
		informerfactory.NewInformerFactory(sharedInformers, metadataInformers), started)
	if err != nil {
		return fmt.Errorf("garbage collector: %w", err)
	}

	sharedInformers.Start(ctx.Done())
	metadataInformers.Start(ctx.Done())
	go nsController.Run(ctx, 4)

	// Short resync so that CRDs installed by a test are garbage-collected soon.
	const syncPeriod = 5 * time.Second
	go wait.Until(restMapper.Reset, syncPeriod, ctx.Done())
	go gc.Run(ctx, 4, syncPeriod)
	go gc.Sync(ctx, client.Discovery(), syncPeriod)
	return nil
}
