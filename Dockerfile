# syntax=docker/dockerfile:1
# ModelGate: one image, every role and command of the `modelgate` CLI (controller, proxy,
# standalone, validate, compile, rollout, status).
#
#   docker build -t modelgate .
#   docker run --rm modelgate validate -f examples/quickstart/
#
# Node is package.json's engines.node major, on Debian slim rather than distroless: the chart's
# proxy preStop hook runs `sleep`, and `kubectl exec` wants a shell. test/unit/dockerfile.test.ts
# lints this file (dockerfile-utils) and checks the rules below.

# --- build: every dependency, then TypeScript to dist/ --------------------------------------------
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# The lockfile lists the native TypeScript and Biome packages for every platform; npm ci installs
# the build machine's. --ignore-scripts: the only install scripts are dev dependencies the build
# does not need: the `node` package (a second Node 24 download, 189 MB, for machines whose Node
# is older) and protobufjs's version check.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- deps: the production dependencies only -------------------------------------------------------
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# No production dependency has an install script; --ignore-scripts keeps a new one from running
# unreviewed.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# --- runtime --------------------------------------------------------------------------------------
FROM node:24-bookworm-slim
LABEL org.opencontainers.image.title="modelgate" \
    org.opencontainers.image.description="Kubernetes-native API gateway for model serving" \
    org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production \
    MODELGATE_STATE_DIR=/var/lib/modelgate
WORKDIR /app
# Owned by root (no --chown): the process cannot change its own code. package.json makes dist/
# ES modules ("type": "module") and gives the version `modelgate --help` prints.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY crds ./crds
COPY examples ./examples
# The one writable place: the state directory (the proxy's last accepted table, standalone's
# rollout progress). The chart mounts an emptyDir here and passes --state-dir, which wins.
RUN install -d -o 1000 -g 1000 /var/lib/modelgate
# The base image's `node` user, by number so that Kubernetes' runAsNonRoot can check it.
USER 1000:1000
EXPOSE 8080 9901
# No HEALTHCHECK: Kubernetes ignores it (the chart probes /healthz and /readyz on the admin port).
# No init process: Node is PID 1, spawns no children, and every serving command handles SIGTERM
# and SIGINT itself (drain, then exit).
# A smaller young generation keeps a proxy's resident memory down (10,000 routes: 186 MB with
# V8's default semi-space, 157 MB with 8 MB; see README "Measured").
ENTRYPOINT ["node", "--max-semi-space-size=8", "/app/dist/cli/main.js"]
CMD ["--help"]
