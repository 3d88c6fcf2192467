# shellcheck shell=bash disable=SC2034  # variables are read by the scripts that source this
# The Debian packages Palisade needs: the one list scripts/setup installs from.
# Sourced, never run. Add a package here with a comment saying what needs it.

PALISADE_DEBIAN_PACKAGES=(
  ca-certificates # TLS trust roots for system tools fetching over https (git, apt sources)
  qemu-system-x86 # test/e2e/vm: boots Debian's kernel (BPF LSM on or off) for kernel tests
  busybox-static  # test/e2e/vm: the VM's initramfs (a static busybox runs with no libraries)
  cpio            # test/e2e/vm: packs that initramfs
  xz-utils        # test/e2e/vm: unpacks the xz-compressed kernel once, so it boots faster
  bpftool         # test/e2e/vm: `bpftool feature probe` checks what the VM's kernel offers
  openssl         # test/e2e/kube: the throw-away CA, serving and client certificates of the test cluster
  util-linux      # test/e2e/kube: setpriv --pdeathsig, so etcd and kube-apiserver die with the test process
  clang-19        # scripts/build-enforcer: compiles bpf/lsm/*.bpf.c (-target bpf, CO-RE); bpftool (above) makes vmlinux.h
  llvm-19         # scripts/build-enforcer: LLVM's BPF tools for clang-19 (llvm-objdump/llvm-strip, to inspect objects)
  libbpf-dev      # scripts/build-enforcer: libbpf headers (BPF C and the native addon) and -lbpf
  libelf-dev      # scripts/build-enforcer: libbpf links against libelf (-lelf)
  zlib1g-dev      # scripts/build-enforcer: libbpf links against zlib (-lz)
  g++             # scripts/build-enforcer: compiles the native addon (src/enforcer/native/*.cc)
  lua5.1          # test/argocd: runs the Argo CD health check (Argo CD embeds Lua 5.1, gopher-lua) against status snapshots
)
