/**
 * The project's image, built from its own Dockerfile by buildah (a Debian package), without a
 * registry: the base image is assembled here from the npm `node` package and the libraries it
 * needs (see ./base.ts) and passed as the Dockerfile's BASE_IMAGE; the pause image of the pod
 * sandboxes is the static `pause` program of tools/node. Both are written as docker-archive
 * tars, ready for `ctr images import`, into a cache keyed by everything that goes into them.
 *
 *   npx tsx tools/image/build.ts     build if needed, print the two archives
 *
 * buildah keeps its layers under the cache (storage/), so a source change rebuilds from the
 * first changed Dockerfile step only.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "../node/exec.js";
import { unmountUnder } from "../node/host.js";
import { ensureNodePrograms } from "../node/node.js";
import { ensurePackages, IMAGE_REQUIREMENTS } from "../node/packages.js";
import { assembleBaseRootfs, baseInputs } from "./base.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "../..");

/** An image archive and the name it has once imported. */
export interface ImageArchive {
  /** docker-archive tar. */
  file: string;
  /** Fully qualified reference, as containerd lists it. */
  ref: string;
}

/** What {@link ensureImages} returns. */
export interface Images {
  app: ImageArchive;
  pause: ImageArchive;
}

function cacheRoot(): string {
  if (process.env.SLOTMAP_IMAGE_CACHE) return process.env.SLOTMAP_IMAGE_CACHE;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "slotmap", "image");
}

/**
 * The reference deploy/ uses: `image: slotmap` with kustomize's `newTag`, which is the package
 * version, i.e. `slotmap:<version>` (docker.io/library/ once normalized by containerd).
 */
export function appImageRef(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version: string };
  return `docker.io/library/slotmap:${pkg.version}`;
}

/** The paths `.dockerignore` admits into the build context (its `!path` lines). */
export function contextPaths(context: string): string[] {
  return fs
    .readFileSync(path.join(context, ".dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("!"))
    .map((l) => l.slice(1));
}

function hashTree(h: ReturnType<typeof createHash>, root: string, rel: string): void {
  const abs = path.join(root, rel);
  const st = fs.statSync(abs, { throwIfNoEntry: false });
  if (!st) return;
  if (st.isDirectory()) {
    for (const e of fs.readdirSync(abs).sort()) hashTree(h, root, path.join(rel, e));
    return;
  }
  h.update(`\0${rel}\0`);
  h.update(fs.readFileSync(abs));
}

/** Key of the app image: Dockerfile, .dockerignore, the context, the base, this builder. */
function appKey(context: string, baseKey: string): string {
  const h = createHash("sha256");
  h.update(`base=${baseKey}\n`);
  for (const f of ["Dockerfile", ".dockerignore", ...contextPaths(context)]) hashTree(h, context, f);
  for (const f of fs.readdirSync(here).sort()) hashTree(h, here, f);
  return h.digest("hex").slice(0, 16);
}

function buildah(storage: string, args: string[], log: (m: string) => void) {
  return run(
    "buildah",
    ["--root", path.join(storage, "storage"), "--runroot", path.join(storage, "runroot"), ...args],
    { timeoutMs: 1_200_000, onStderrLine: (l) => l.startsWith("STEP") && log(`image: ${l}`) },
  );
}

async function imageExists(storage: string, ref: string): Promise<boolean> {
  const r = await run(
    "buildah",
    [
      "--root",
      path.join(storage, "storage"),
      "--runroot",
      path.join(storage, "runroot"),
      "inspect",
      "--type",
      "image",
      ref,
    ],
    { allowFailure: true },
  );
  return r.code === 0;
}

/** Builds `Containerfile` text with `context` into the local storage as `tag`. */
async function bud(
  storage: string,
  tag: string,
  context: string,
  containerfile: string,
  buildArgs: Record<string, string>,
  log: (m: string) => void,
): Promise<void> {
  await buildah(
    storage,
    [
      "bud",
      "--layers",
      "--pull=never",
      // chroot isolation: RUN steps need no runtime configuration, and share the host's network
      // (npm ci reaches the npm registry as the host does).
      "--isolation=chroot",
      "--network=host",
      ...Object.entries(buildArgs).flatMap(([k, v]) => ["--build-arg", `${k}=${v}`]),
      "-f",
      containerfile,
      "-t",
      tag,
      context,
    ],
    log,
  );
}

/**
 * The build context: the repository, or `SLOTMAP_IMAGE_CONTEXT` (e.g. a `git archive` of a
 * commit, to build what is committed while the working tree is being edited).
 */
export function buildContext(): string {
  return path.resolve(process.env.SLOTMAP_IMAGE_CONTEXT || repoRoot);
}

/** Builds (or finds in the cache) the app image and the pause image. */
export async function ensureImages(
  log: (m: string) => void = (m) => process.stderr.write(`${m}\n`),
): Promise<Images> {
  const context = buildContext();
  await ensurePackages(IMAGE_REQUIREMENTS, log);
  const bin = await ensureNodePrograms(log);
  const cache = cacheRoot();
  const base = baseInputs(repoRoot);
  const baseTag = `localhost/slotmap-node-base:${base.key}`;
  const pauseKey = path.basename(bin);
  const key = appKey(context, base.key);
  const out = path.join(cache, `${key}-${pauseKey}`);
  const images: Images = {
    app: { file: path.join(out, "slotmap.tar"), ref: appImageRef() },
    pause: { file: path.join(out, "pause.tar"), ref: `localhost/slotmap-pause:${pauseKey}` },
  };
  if (fs.existsSync(images.app.file) && fs.existsSync(images.pause.file)) return images;

  const started = Date.now();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "slotmap-image-"));
  try {
    if (!(await imageExists(cache, baseTag))) {
      log(`image: assembling the base ${baseTag} from node ${base.nodeVersion} and npm ${base.npmVersion}`);
      const ctx = path.join(work, "base");
      assembleBaseRootfs(base, path.join(ctx, "rootfs"));
      fs.writeFileSync(path.join(ctx, "Containerfile"), base.containerfile);
      await bud(cache, baseTag, ctx, path.join(ctx, "Containerfile"), {}, log);
    }
    const pauseCtx = path.join(work, "pause");
    fs.mkdirSync(pauseCtx);
    fs.copyFileSync(path.join(bin, "pause"), path.join(pauseCtx, "pause"));
    fs.writeFileSync(
      path.join(pauseCtx, "Containerfile"),
      'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n',
    );
    await bud(cache, images.pause.ref, pauseCtx, path.join(pauseCtx, "Containerfile"), {}, log);

    log(`image: building ${images.app.ref} from the Dockerfile (BASE_IMAGE=${baseTag})`);
    await bud(cache, images.app.ref, context, path.join(context, "Dockerfile"), { BASE_IMAGE: baseTag }, log);

    const tmp = `${out}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    for (const [name, img] of [
      ["slotmap.tar", images.app],
      ["pause.tar", images.pause],
    ] as const) {
      await buildah(cache, ["push", img.ref, `docker-archive:${path.join(tmp, name)}:${img.ref}`], log);
    }
    fs.rmSync(out, { recursive: true, force: true });
    fs.renameSync(tmp, out);
    // Images of older sources stay as cached layers only.
    await buildah(cache, ["rmi", "--prune"], log).catch(() => {});
    log(`image: built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return images;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    // containers/storage leaves its overlay home (and layers it mounted) mounted after buildah
    // exits; nothing of a build stays mounted.
    await unmountUnder(path.join(cache, "storage"));
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureImages().then(
    (images) =>
      process.stdout.write(
        `${images.app.file} ${images.app.ref}\n${images.pause.file} ${images.pause.ref}\n`,
      ),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
