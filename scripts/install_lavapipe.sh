#!/usr/bin/env bash
# Installs Mesa's lavapipe (a Vulkan driver that runs on the CPU) and the Vulkan loader. On Debian
# 12 it takes Mesa 25 from bookworm-backports: Debian 12's own Mesa 22.3 lavapipe lacks the
# integer dot product and shader-f16, and its compute code generation is much slower.
# The backports suite is served by the mirror the machine already uses for bookworm: its URI is
# read from the configured apt sources (deb822 `.sources` files or one-line `.list` files), never
# written here.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
. /etc/os-release

# The URI of the first configured source that serves the plain `bookworm` suite.
bookworm_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822: paragraphs of fields; print the URIs of a paragraph whose Suites has `bookworm`.
    awk 'BEGIN { RS = ""; FS = "\n" }
      { uri = ""; ok = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); uri = a[2] }
          if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == "bookworm") ok = 1 }
        }
        if (ok && uri != "") { print uri; exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # one-line form: deb [options] URI SUITE COMPONENTS...
    awk '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == "bookworm") { print $i; exit } }' "$f"
  done
}

if [ "${VERSION_CODENAME:-}" = bookworm ] && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
  mirror="$(bookworm_mirror | head -n 1)"
  if [ -z "$mirror" ]; then
    echo "install_lavapipe: no configured apt source serves bookworm; cannot add bookworm-backports" >&2
    exit 1
  fi
  cat > /etc/apt/sources.list.d/wunet-backports.sources <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -qq
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
  apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
else
  apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi
