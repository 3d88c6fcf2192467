# shellcheck shell=bash disable=SC2034  # variables are read by the scripts that source this
# The Debian packages Palisade needs: the one list scripts/setup installs from.
# Sourced, never run. Add a package here with a comment saying what needs it.

PALISADE_DEBIAN_PACKAGES=(
  ca-certificates # TLS trust roots for system tools fetching over https (git, apt sources)
)
