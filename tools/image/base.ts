/**
 * A local stand-in for the Dockerfile's registry base (node:24-slim): the Node.js binary of the
 * npm `node` package (the project's devDependency), the npm that runs this build, /bin/sh and
 * /usr/bin/env (npm's scripts need them), the shared libraries all of these load (found with
 * ldd), the host's CA bundle (npm ci in the build must trust what the host trusts), and users
 * root and node (1000, as in the official image).
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

/** What the base is made of, and its cache key. */
export interface BaseInputs {
  key: string;
  nodeBinary: string;
  nodeVersion: string;
  npmDir: string;
  npmVersion: string;
  /** Host programs copied in, with their libraries. */
  programs: string[];
  caBundle: string | undefined;
  containerfile: string;
}

const CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";

function npmPackageDir(): string {
  // Under `npm run`, npm names its own entry point; otherwise the npm on PATH.
  const cli =
    process.env.npm_execpath && fs.existsSync(process.env.npm_execpath)
      ? process.env.npm_execpath
      : fs.realpathSync(execFileSync("sh", ["-c", "command -v npm"], { encoding: "utf8" }).trim());
  let dir = path.dirname(cli);
  while (!fs.existsSync(path.join(dir, "package.json")) && dir !== "/") dir = path.dirname(dir);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as { name?: string };
  if (pkg.name !== "npm") throw new Error(`could not find npm's package directory from ${cli}`);
  return dir;
}

/** The inputs of the base image for the repository at `repoRoot`. */
export function baseInputs(repoRoot: string): BaseInputs {
  const nodeBinary = fs.realpathSync(path.join(repoRoot, "node_modules/node/bin/node"));
  const nodeVersion = execFileSync(nodeBinary, ["--version"], { encoding: "utf8" }).trim();
  const npmDir = npmPackageDir();
  const npmVersion = (
    JSON.parse(fs.readFileSync(path.join(npmDir, "package.json"), "utf8")) as { version: string }
  ).version;
  const programs = [fs.realpathSync("/bin/sh"), fs.realpathSync("/usr/bin/env")];
  const caBundle = fs.existsSync(CA_BUNDLE) ? CA_BUNDLE : undefined;
  const env = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    `NODE_VERSION=${nodeVersion.replace(/^v/, "")}`,
    // Node.js trusts its own CA list only; the host's may hold a proxy's CA.
    ...(caBundle ? [`NODE_EXTRA_CA_CERTS=${caBundle}`] : []),
  ];
  const containerfile = `FROM scratch\nCOPY rootfs/ /\nENV ${env.join(" ")}\nCMD ["node"]\n`;
  const h = createHash("sha256");
  h.update(`${nodeVersion}\n${npmVersion}\n${programs.join("\n")}\n${containerfile}`);
  h.update(fs.readFileSync(new URL(import.meta.url)));
  if (caBundle) h.update(fs.readFileSync(caBundle));
  return {
    key: h.digest("hex").slice(0, 16),
    nodeBinary,
    nodeVersion,
    npmDir,
    npmVersion,
    programs,
    caBundle,
    containerfile,
  };
}

/** Shared libraries (and the dynamic loader) `binary` loads, as absolute paths. */
function sharedLibraries(binary: string): string[] {
  const out = execFileSync("ldd", [binary], { encoding: "utf8" });
  const libs: string[] = [];
  for (const line of out.split("\n")) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

function copyFile(from: string, rootfs: string, to: string, mode?: number): void {
  const dest = path.join(rootfs, to);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.copyFileSync(fs.realpathSync(from), dest);
  if (mode !== undefined) fs.chmodSync(dest, mode);
}

/** Writes the base's root file system into `rootfs` (a new directory). */
export function assembleBaseRootfs(b: BaseInputs, rootfs: string): void {
  fs.mkdirSync(rootfs, { recursive: true });
  copyFile(b.nodeBinary, rootfs, "/usr/local/bin/node", 0o755);
  fs.cpSync(b.npmDir, path.join(rootfs, "usr/local/lib/node_modules/npm"), { recursive: true });
  for (const [name, cli] of [
    ["npm", "npm-cli.js"],
    ["npx", "npx-cli.js"],
  ]) {
    fs.symlinkSync(`../lib/node_modules/npm/bin/${cli}`, path.join(rootfs, "usr/local/bin", name!));
  }
  copyFile(b.programs[0]!, rootfs, "/bin/sh", 0o755);
  copyFile(b.programs[1]!, rootfs, "/usr/bin/env", 0o755);
  const libs = new Set([b.nodeBinary, ...b.programs].flatMap(sharedLibraries));
  for (const lib of libs) copyFile(lib, rootfs, lib, 0o755);
  if (b.caBundle) copyFile(b.caBundle, rootfs, b.caBundle, 0o644);
  const etc = path.join(rootfs, "etc");
  fs.mkdirSync(etc, { recursive: true });
  fs.writeFileSync(
    path.join(etc, "passwd"),
    "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/sh\n",
  );
  fs.writeFileSync(path.join(etc, "group"), "root:x:0:\nnode:x:1000:\nnogroup:x:65534:\n");
  for (const [d, mode] of [
    ["tmp", 0o1777],
    ["root", 0o700],
    ["home/node", 0o755],
  ] as const) {
    fs.mkdirSync(path.join(rootfs, d), { recursive: true });
    fs.chmodSync(path.join(rootfs, d), mode);
  }
  fs.chownSync(path.join(rootfs, "home/node"), 1000, 1000);
}
