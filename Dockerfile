# syntax=docker/dockerfile:1
# One image for every slotmap program. The default entrypoint is the coordinator:
#   docker run IMAGE --leader-elect
# The example controller and the kubectl plugin are in the same image:
#   docker run --entrypoint node IMAGE dist/examples/checksum-controller/main.js
#   docker run --entrypoint node IMAGE dist/src/cli/kubectl-slotmap.js keyslot /Secret/default/db
# (Kubernetes: set `command:`, as deploy/examples/checksum does; `args:` go to the coordinator.)
#
# BASE_IMAGE: any image with Node.js >= 22.12, npm and /bin/sh at the usual places. The default
# comes from a registry; tools/image builds a local one from the npm `node` package instead:
#   buildah bud --build-arg BASE_IMAGE=localhost/slotmap-node-base:<tag> .

ARG BASE_IMAGE=node:24-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /app
# Dependencies first, so that source changes reuse the cached layer.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY examples ./examples
RUN npm run build

FROM ${BASE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; none of them needs an install script.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY crds ./crds
# The image's "node" user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
# The coordinator: /metrics on 8080, /healthz and /readyz on 8081 (the example shard serves all
# three on 8080).
EXPOSE 8080 8081
ENTRYPOINT ["node", "dist/src/coordinator/main.js"]
