#!/usr/bin/env bash
# One entry point for a fresh machine: sets up .venv (once), then
#   ./run.sh app   [labelchat args]   builds the demo project (once) and opens the app on 127.0.0.1:7860
#   ./run.sh test  [pytest args]      runs the whole test suite
# One .venv serves both: `test` adds its tools on top of what `app` installed (and
# `app` after `test` installs nothing). .venv/.labelchat-installed records what is in
# it (pyproject.toml's hash and the extras); the install is redone only when
# pyproject.toml changes, so a second run starts in seconds.
set -euo pipefail
cd "$(dirname "$0")"

# Nothing may phone home: no analytics, no telemetry, no hub lookups by surprise.
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1 DO_NOT_TRACK=1

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    # 2>/dev/null: a pyenv shim for a version that is not active says "command not found".
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "labelchat needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2; exit 1; }

STAMP=.venv/.labelchat-installed  # one line: "<sha256 of pyproject.toml> <extra>,<extra>"

union() {  # union a,b c -> "a,b,c": extras as pip writes them, sorted, without repeats
  tr ', ' '\n\n' <<<"$*" | sed '/^$/d' | sort -u | paste -sd, -
}

# setup [EXTRA]: make .venv hold labelchat (editable) and EXTRA's tools, installing only what is missing.
setup() {
  local need=${1:-} want sha="" have="" extras message old
  want="$(sha256sum pyproject.toml | cut -c1-64)"
  if [ -x .venv/bin/python ]; then
    if [ -f "$STAMP" ]; then
      read -r sha have < "$STAMP" || true
    else  # an earlier run.sh kept one stamp per command: .venv/.labelchat-app, .venv/.labelchat-test
      for old in app test; do
        if [ "$(cat ".venv/.labelchat-$old" 2>/dev/null)" = "$want" ]; then
          sha=$want; [ "$old" = app ] || have=$(union "$have" "$old")
        fi
      done
    fi
  fi
  if [ "$sha" = "$want" ] && [[ -z "$need" || ",$have," == *",$need,"* ]]; then
    return
  fi
  extras=$(union "$have" "$need")  # what was there stays: pip only checks it against the new pins
  if [ ! -x .venv/bin/python ]; then
    message="Setting up .venv (first run: a few minutes; torch is large)..."
  elif [ "$sha" = "$want" ]; then
    message="Adding the $need tools to .venv (once)..."
  else
    message="pyproject.toml changed: updating .venv..."
  fi
  if [ "$need" = test ] && [[ ",$have," != *",test,"* ]]; then
    message+=" The test tools compile llama.cpp: about 15 minutes on 2 cores, once."
  fi
  echo "$message" >&2
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip >&2
  # llama-cpp-python (a test extra) builds llama.cpp from source: portable, CPU only, no extras.
  export CMAKE_ARGS=${CMAKE_ARGS:-"-DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF"}
  # One pip command for everything, so torch and torchvision are resolved together.
  .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}" >&2
  echo "$want $extras" > "$STAMP"
  rm -f .venv/.labelchat-app .venv/.labelchat-test
}

command=${1:-app}
shift || true
case "$command" in
  app)
    setup
    export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}  # the demo needs no network; 'labelchat fetch-model' gets CLIP
    exec .venv/bin/labelchat demo "$@"
    ;;
  test)
    setup test
    # The browser tests drive Debian's Chromium (Playwright never downloads a browser here).
    if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then
      echo "Installing Debian's chromium for the browser tests..." >&2
      SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
      $SUDO apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >&2
    fi
    export HF_HUB_OFFLINE=1
    exec .venv/bin/python -m pytest "$@"
    ;;
  *)
    echo "usage: ./run.sh app|test [args]" >&2
    exit 2
    ;;
esac
