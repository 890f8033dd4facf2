#!/usr/bin/env bash
# Install the system tools syscall-gate needs, if they are missing.
#   scripts/install-deps.sh          strace, a C compiler, make, python3 venv and headers
#   scripts/install-deps.sh --test   also what the test suite traces and builds with
# Uses apt-get (Debian/Ubuntu); sudo when not root. Installs nothing already present.
set -euo pipefail

want=()
need() { command -v "$1" >/dev/null 2>&1 || want+=("$2"); }
need strace strace
need gcc gcc
need make make
# gcc installed without recommends has no C library headers (libc6-dev; the tests also link
# one program statically against its libc.a).
[ -e /usr/include/stdio.h ] || want+=(libc6-dev)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || want+=(python3-venv)
[ -e /usr/include/linux/io_uring.h ] || want+=(linux-libc-dev)
# Python's headers build the parser's optional C line filter (ci_gate/trace/_scan.c).
python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || want+=(python3-dev)
if [ "${1:-}" = "--test" ]; then
  need rsync rsync
  need fio fio
  # tests/programs (io_uring opcode tests) link against liburing
  [ -e /usr/include/liburing.h ] || want+=(liburing-dev)
  need podman podman
  need runc runc
  need debootstrap debootstrap
  # podman's default (bridge) network for the container-action tests: netavark and its
  # firewall rules, which --no-install-recommends would leave out.
  [ -x /usr/lib/podman/netavark ] || want+=(netavark)
  need iptables iptables
  need node nodejs
  need unshare util-linux
  need setpriv util-linux
  need taskset util-linux  # make bench: the one-CPU strace baseline
  need git git
fi

if [ ${#want[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: missing ${want[*]}, and this system has no apt-get; install them by hand" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
