#!/usr/bin/env bash
# The package contract, as a user meets it (a CI step; needs `npm run build` first):
#  1. `npm pack`: the tarball has LICENSE, no example build, and every source map's sources;
#  2. a separate consumer project installs the tarball and compiles test/package/consumer.ts with
#     tsc --strict (public exports only: deep imports are not exported), then runs it;
#  3. the same program and both binaries run on the floor Node.js (engines.node, from the npm
#     `node` package), and the release below the floor gets the one-line start-up message.
# Ends with a "package: N passed, M failed" line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAILED: $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

test -f dist/src/index.js || { echo "dist/ missing: run npm run build first" >&2; exit 1; }
FLOOR=$(node -p 'require("./package.json").engines.node.replace(/^>=/, "")')
BELOW=$(node -p '(([a, b]) => `${a}.${b - 1}.0`)(process.argv[1].split(".").map(Number))' "$FLOOR")
TS_VERSION=$(node -p 'require("typescript/package.json").version')
TYPES_NODE=$(node -p 'require("@types/node/package.json").version')

echo "== pack"
npm pack --silent --pack-destination "$WORK" >"$WORK/pack.out"
TARBALL="$WORK/$(tail -1 "$WORK/pack.out")"
mkdir "$WORK/extract"
tar -xzf "$TARBALL" -C "$WORK/extract"
PKG="$WORK/extract/package"
check "tarball has LICENSE (Apache-2.0)" grep -q "Apache License" "$PKG/LICENSE"
check "tarball has no example build" test ! -e "$PKG/dist/examples"
check "every source map points at a shipped file" node -e '
  const fs = require("node:fs"), path = require("node:path");
  const root = process.argv[1];
  let maps = 0, missing = [];
  const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (p.endsWith(".map")) { maps++; for (const s of JSON.parse(fs.readFileSync(p, "utf8")).sources)
      if (!fs.existsSync(path.resolve(path.dirname(p), s))) missing.push(path.relative(root, p) + " -> " + s); }
  } };
  walk(path.join(root, "dist"));
  if (maps === 0 || missing.length) { console.error(maps, "maps; missing:", missing.slice(0, 5)); process.exit(1); }' "$PKG"

echo "== consumer project (tsc --strict, public exports only)"
C="$WORK/consumer"
mkdir -p "$C/src"
cp test/package/consumer.ts "$C/src/main.ts"
# Issue 16's trial controller (ConfigMaps labelled app=demo → an annotation), public exports only.
cp test/package/demo-controller.ts "$C/src/demo.ts"
echo "demo controller: $(grep -cv '^\s*\(//.*\)\?$' test/package/demo-controller.ts) lines of code ($(wc -l <test/package/demo-controller.ts) with comments and blank lines)"
cat >"$C/package.json" <<JSON
{ "name": "slotmap-consumer", "private": true, "type": "module" }
JSON
cat >"$C/tsconfig.json" <<JSON
{ "compilerOptions": { "strict": true, "target": "ES2023", "module": "NodeNext", "moduleResolution": "NodeNext",
  "types": ["node"], "outDir": "out", "rootDir": "src", "skipLibCheck": true }, "include": ["src"] }
JSON
(cd "$C" && npm install --silent --no-audit --no-fund --prefer-offline --ignore-scripts \
  "$TARBALL" "typescript@$TS_VERSION" "@types/node@$TYPES_NODE" >/dev/null)
check "consumer compiles with tsc --strict" bash -c "cd '$C' && node node_modules/typescript/bin/tsc -p ."
cat >"$WORK/deep.ts" <<'TS'
import { KubeHttp } from "slotmap/dist/src/kube/http.js";
console.log(KubeHttp);
TS
cp "$WORK/deep.ts" "$C/src/deep.ts"
check "a deep import is refused (not a public export)" bash -c \
  "cd '$C' && ! node node_modules/typescript/bin/tsc -p . >'$WORK/deep.out' 2>&1 && grep -q 'slotmap/dist' '$WORK/deep.out'"
rm "$C/src/deep.ts"
check "consumer runs on $(node --version)" bash -c "cd '$C' && node out/main.js >'$WORK/current.json' && grep -q '\"slot\":4387' '$WORK/current.json'"

echo "== Node.js floor $FLOOR (npm package node@$FLOOR)"
npm install --silent --prefix "$WORK/floor" --no-audit --no-fund --prefer-offline "node@$FLOOR" >/dev/null
FLOOR_NODE="$WORK/floor/node_modules/.bin/node"
check "the floor node is $FLOOR" test "$("$FLOOR_NODE" --version)" = "v$FLOOR"
check "consumer runs on the floor with the same output" bash -c \
  "cd '$C' && '$FLOOR_NODE' out/main.js | sed 's/\"node\":\"[^\"]*\"//' >'$WORK/floor.json' && sed 's/\"node\":\"[^\"]*\"//' '$WORK/current.json' | cmp -s - '$WORK/floor.json'"
check "kubectl-slotmap keyslot on the floor" bash -c \
  "'$FLOOR_NODE' '$C/node_modules/slotmap/dist/src/cli/kubectl-slotmap.js' keyslot x | grep -qx 4387"
check "slotmap-coordinator --help on the floor" bash -c \
  "'$FLOOR_NODE' '$C/node_modules/slotmap/dist/src/coordinator/main.js' --help | grep -q 'Usage: slotmap-coordinator'"
# A request through undici at the floor: a refused connection is a one-line error and exit 1.
cat >"$WORK/refused.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: "https://127.0.0.1:65123", insecure-skip-tls-verify: true } }]
users: [{ name: u, user: { token: t } }]
contexts: [{ name: x, context: { cluster: c, user: u } }]
current-context: x
YAML
check "kubectl-slotmap get on the floor reports a refused connection" bash -c \
  "'$FLOOR_NODE' '$C/node_modules/slotmap/dist/src/cli/kubectl-slotmap.js' --kubeconfig '$WORK/refused.kubeconfig' get >'$WORK/get.out' 2>&1; test \$? -eq 1 && grep -qi 'refused' '$WORK/get.out'"

echo "== below the floor: Node.js $BELOW"
npm install --silent --prefix "$WORK/below" --no-audit --no-fund --prefer-offline "node@$BELOW" >/dev/null
BELOW_NODE="$WORK/below/node_modules/.bin/node"
want="requires Node.js >= $FLOOR, found $BELOW"
check "import \"slotmap\" on $BELOW names both versions" bash -c \
  "cd '$C' && ! '$BELOW_NODE' out/main.js >'$WORK/below.out' 2>&1 && grep -q 'slotmap $want' '$WORK/below.out'"
for bin in kubectl-slotmap:cli/kubectl-slotmap.js slotmap-coordinator:coordinator/main.js; do
  check "${bin%%:*} on $BELOW: one line, exit 1" bash -c \
    "'$BELOW_NODE' '$C/node_modules/.bin/${bin%%:*}' --help >'$WORK/bin.out' 2>&1; test \$? -eq 1 && test \$(wc -l <'$WORK/bin.out') -eq 1 && grep -q '^error: ${bin%%:*} $want' '$WORK/bin.out'"
done

echo "package: $passed passed, $failed failed"
test "$failed" -eq 0
