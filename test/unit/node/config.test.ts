import { describe, expect, it } from "vitest";
import {
  cniConfig,
  containerdConfig,
  kubeletConfig,
  NODE_NETWORK,
  nodeLayout,
} from "../../../tools/node/config.js";
import { processOf } from "../../incluster/pod-logs.js";

const layout = nodeLayout("/tmp/slotmap-node-x1", "x1", "localhost/slotmap-pause:abc", 41234);

describe("local node configuration", () => {
  it("keeps containerd's state, sockets and pod network namespaces under the node's directory", () => {
    const toml = containerdConfig(layout, "/usr/lib/cni");
    expect(toml).toContain('root = "/tmp/slotmap-node-x1/containerd/root"');
    expect(toml).toContain('address = "/tmp/slotmap-node-x1/containerd.sock"');
    expect(toml).toContain("netns_mounts_under_state_dir = true");
    // runc cannot write oom_score_adj without CAP_SYS_RESOURCE on this machine kind.
    expect(toml).toContain("restrict_oom_score_adj = true");
    expect(toml).toContain('sandbox_image = "localhost/slotmap-pause:abc"');
    expect(toml).toContain("SystemdCgroup = false");
  });

  it("gives the kubelet cgroupfs on cgroup v1, its own cgroup root, and a loopback-only API", () => {
    const k = JSON.parse(kubeletConfig(layout)) as Record<string, unknown>;
    expect(k).toMatchObject({
      failCgroupV1: false,
      cgroupDriver: "cgroupfs",
      cgroupRoot: "/slotmap-node-x1",
      address: "127.0.0.1",
      port: 41234,
      readOnlyPort: 0,
      containerRuntimeEndpoint: "unix:///tmp/slotmap-node-x1/containerd.sock",
    });
  });

  it("puts pods on a bridge with host-local addresses kept in the node's directory", () => {
    const c = JSON.parse(cniConfig(layout)) as { plugins: Array<Record<string, unknown>> };
    expect(c.plugins[0]).toMatchObject({
      type: "bridge",
      isGateway: true,
      ipMasq: false,
      ipam: {
        type: "host-local",
        dataDir: "/tmp/slotmap-node-x1/cni/ipam",
        ranges: [[{ subnet: NODE_NETWORK.podSubnet }]],
      },
    });
  });

  it("never uses a loopback node IP (the kubelet refuses it)", () => {
    expect(NODE_NETWORK.nodeIP.startsWith("127.")).toBe(false);
  });
});

describe("processOf", () => {
  it("drops the incarnation counter of a Lease holder identity", () => {
    expect(processOf("checksums-2-b0279ac7-1")).toBe("checksums-2-b0279ac7");
    expect(processOf("checksums-2-b0279ac7-12")).toBe("checksums-2-b0279ac7");
    expect(processOf("no-counter-x")).toBe("no-counter-x");
  });
});
