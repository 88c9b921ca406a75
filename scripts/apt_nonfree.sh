#!/usr/bin/env bash
# Install Debian packages that live in the contrib and non-free components (`make voices
# NONFREE=1`) without editing /etc/apt: a sources list of our own for this release, package
# lists in a temporary folder, removed afterwards.
#     bash scripts/apt_nonfree.sh PACKAGE...
set -euo pipefail
. "${OS_RELEASE:-/etc/os-release}"
if [ "${ID:-}" != debian ] || [ -z "${VERSION_CODENAME:-}" ]; then
    echo "NONFREE=1 installs from Debian's contrib and non-free components, and this system is ${PRETTY_NAME:-not Debian}; install $* from its own archive." >&2
    exit 1
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/sources" "$dir/lists/partial"
chmod -R a+rX "$dir" && { chown _apt "$dir/lists/partial" 2>/dev/null || true; }  # apt downloads as _apt
cat > "$dir/sources/debian.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: $VERSION_CODENAME $VERSION_CODENAME-updates
Components: main contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
options=(-o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$dir/sources" -o "Dir::State::Lists=$dir/lists")
apt-get update -qq "${options[@]}"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${options[@]}" "$@" >/dev/null
