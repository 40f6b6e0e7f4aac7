/**
 * The Debian packages the node and the image build run: installed with apt-get where missing
 * (the CI machine starts bare), or a clear error naming what to install where that cannot be
 * done (not root, not Debian).
 */
import { onPath, run } from "./exec.js";

/** An executable and the Debian package that provides it. */
export interface Requirement {
  executable: string;
  /** Debian (bookworm) package name. */
  debian: string;
}

/** What the node runs. Versions known to work: containerd 1.6.20, runc 1.1.5, plugins 1.1.1. */
export const NODE_REQUIREMENTS: readonly Requirement[] = [
  { executable: "containerd", debian: "containerd" },
  { executable: "containerd-shim-runc-v2", debian: "containerd" },
  { executable: "ctr", debian: "containerd" },
  { executable: "runc", debian: "runc" },
  { executable: "/usr/lib/cni/bridge", debian: "containernetworking-plugins" },
  { executable: "/usr/lib/cni/host-local", debian: "containernetworking-plugins" },
  { executable: "/usr/lib/cni/loopback", debian: "containernetworking-plugins" },
  { executable: "ip", debian: "iproute2" },
  { executable: "nsenter", debian: "util-linux" },
  { executable: "mount", debian: "mount" },
];

/** What the image build runs (buildah brings its storage and policy configuration). */
export const IMAGE_REQUIREMENTS: readonly Requirement[] = [
  { executable: "buildah", debian: "buildah" },
  { executable: "runc", debian: "runc" },
];

/** The CNI plugins' directory of Debian's containernetworking-plugins. */
export const CNI_BIN_DIR = "/usr/lib/cni";

/**
 * Makes sure every requirement is present: installs the missing packages with
 * `apt-get update && apt-get install` when running as root on a system with apt-get, and throws
 * an error naming the packages otherwise.
 */
export async function ensurePackages(
  reqs: readonly Requirement[],
  log: (msg: string) => void = (m) => process.stderr.write(`${m}\n`),
): Promise<void> {
  const missing = () => [...new Set(reqs.filter((r) => !onPath(r.executable)).map((r) => r.debian))];
  const packages = missing();
  if (packages.length === 0) return;
  const manual = `install them (Debian/Ubuntu: apt-get install --no-install-recommends ${packages.join(" ")})`;
  if (process.getuid?.() !== 0) {
    throw new Error(
      `missing Debian packages ${packages.join(", ")}, and not root to install them: ${manual}`,
    );
  }
  if (!onPath("apt-get")) {
    throw new Error(`missing packages ${packages.join(", ")} and no apt-get here: ${manual}`);
  }
  log(`installing Debian packages: ${packages.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  try {
    await run("apt-get", ["update"], { env, timeoutMs: 300_000 });
    await run("apt-get", ["install", "-y", "--no-install-recommends", ...packages], {
      env,
      timeoutMs: 600_000,
    });
  } catch (err) {
    throw new Error(
      `could not install ${packages.join(", ")}: ${(err as Error).message}\nOtherwise ${manual}`,
    );
  }
  const still = missing();
  if (still.length > 0) throw new Error(`installed, but still missing executables of: ${still.join(", ")}`);
}
