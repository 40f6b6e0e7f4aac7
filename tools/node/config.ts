/**
 * The configuration files of the local node: containerd's, the CNI network's and the kubelet's.
 * Pure functions of a {@link NodeLayout}, so that what the node runs with can be read in one
 * place; the reasons for the settings that differ from the defaults are beside them.
 */
import path from "node:path";

/** Addresses of the node's private network namespace. */
export const NODE_NETWORK = {
  /** The node's InternalIP, on the namespace's `lo`. Not loopback: the kubelet refuses that. */
  nodeIP: "10.99.0.2",
  /**
   * The `kubernetes` Service's ClusterIP (first address of testenv's service range, and in its
   * serving certificate), also on `lo`: pods reach the API server through a forwarder on its
   * port 443, with the default in-cluster configuration and no kube-proxy.
   */
  serviceIP: "10.0.0.1",
  /** Pod addresses (CNI bridge + host-local). */
  podSubnet: "10.88.0.0/24",
  bridge: "slotmap0",
} as const;

/** Where one node keeps its state, all under one private directory. */
export interface NodeLayout {
  /** The node's directory (removed at stop). */
  dir: string;
  /** Name of the kubelet's cgroup root (one per node, so pods of two nodes never mix). */
  cgroupRoot: string;
  /** containerd's gRPC socket. */
  containerdSocket: string;
  /** Image the pod sandboxes run (the local pause image). */
  sandboxImage: string;
  /** Port of the kubelet, inside the namespace on 127.0.0.1, and forwarded from the host's. */
  kubeletPort: number;
}

/** The layout of a node in `dir`. */
export function nodeLayout(dir: string, id: string, sandboxImage: string, kubeletPort: number): NodeLayout {
  return {
    dir,
    cgroupRoot: `/slotmap-node-${id}`,
    containerdSocket: path.join(dir, "containerd.sock"),
    sandboxImage,
    kubeletPort,
  };
}

/** CNI configuration directory and host-local's address store. */
export function cniDirs(l: NodeLayout): { confDir: string; ipamDir: string } {
  return { confDir: path.join(l.dir, "cni/net.d"), ipamDir: path.join(l.dir, "cni/ipam") };
}

/** containerd 1.6 configuration (version 2 format). */
export function containerdConfig(l: NodeLayout, cniBinDir: string): string {
  const d = (p: string) => JSON.stringify(path.join(l.dir, p));
  const { confDir } = cniDirs(l);
  return `version = 2
root = ${d("containerd/root")}
state = ${d("containerd/state")}
# Snapshotters that cannot work here only add errors to the log.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = ${JSON.stringify(l.containerdSocket)}

[ttrpc]
  address = ${JSON.stringify(`${l.containerdSocket}.ttrpc`)}

[plugins."io.containerd.internal.v1.opt"]
  path = ${d("containerd/opt")}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${JSON.stringify(l.sandboxImage)}
  # runc cannot raise oom_score_adj without CAP_SYS_RESOURCE, which this machine kind lacks
  # ("nsexec: failed to update /proc/self/oom_score_adj: Permission denied").
  restrict_oom_score_adj = true
  # Pod network namespaces under the node's directory rather than /run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = ${d("runc")}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ${JSON.stringify(cniBinDir)}
    conf_dir = ${JSON.stringify(confDir)}
    max_conf_num = 1
`;
}

/** The pod network: one bridge in the node's namespace, addresses from host-local. */
export function cniConfig(l: NodeLayout): string {
  const { ipamDir } = cniDirs(l);
  const conf = {
    cniVersion: "1.0.0",
    name: "slotmap",
    plugins: [
      {
        type: "bridge",
        bridge: NODE_NETWORK.bridge,
        isGateway: true,
        // Nothing leaves the namespace, so no masquerading (and no iptables rules).
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          dataDir: ipamDir,
          ranges: [[{ subnet: NODE_NETWORK.podSubnet }]],
          routes: [{ dst: "0.0.0.0/0" }],
        },
      },
    ],
  };
  return `${JSON.stringify(conf, null, 2)}\n`;
}

/** KubeletConfiguration (JSON is YAML). */
export function kubeletConfig(l: NodeLayout): string {
  const conf = {
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    // Only reachable through the forwarder on the host's loopback (the API server's logs, exec
    // and port-forward), never from pods: anonymous access is then acceptable for a local node.
    address: "127.0.0.1",
    port: l.kubeletPort,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
    authorization: { mode: "AlwaysAllow" },
    containerRuntimeEndpoint: `unix://${l.containerdSocket}`,
    // cgroup v1 here: kubelet 1.35+ refuses it unless told; no systemd to drive cgroups.
    failCgroupV1: false,
    cgroupDriver: "cgroupfs",
    cgroupRoot: l.cgroupRoot,
    failSwapOn: false,
    // A shared build machine's disk is often fuller than the defaults allow: evict only in
    // earnest, and never collect the images imported without a registry to pull them back from.
    evictionHard: { "memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%" },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    // Pods have no route out of the namespace, so no DNS server to point them at.
    resolvConf: "/etc/resolv.conf",
    serializeImagePulls: false,
    nodeStatusUpdateFrequency: "2s",
    logging: { format: "text" },
  };
  return `${JSON.stringify(conf, null, 2)}\n`;
}
