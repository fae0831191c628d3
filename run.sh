#!/usr/bin/env bash
# One entry point for a fresh machine: sets up .venv (once), then
#   ./run.sh app   [labelchat args]   builds the demo project (once) and opens the app on 127.0.0.1:7860
#   ./run.sh test  [pytest args]      runs the whole test suite
# A second run reuses .venv and starts in seconds: the install is redone only
# when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")"

# Nothing may phone home: no analytics, no telemetry, no hub lookups by surprise.
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1 DO_NOT_TRACK=1

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "labelchat needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2; exit 1; }

setup() {
  local extras=$1 stamp=".venv/.labelchat-$1" want
  want="$(cat pyproject.toml | sha256sum | cut -c1-64)"
  if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  echo "Setting up .venv (first run: a few minutes; torch is large)..." >&2
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip >&2
  # llama-cpp-python (a test extra) builds llama.cpp from source: portable, CPU only, no extras.
  export CMAKE_ARGS=${CMAKE_ARGS:-"-DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF"}
  # One pip command for everything, so torch and torchvision are resolved together.
  .venv/bin/python -m pip install --quiet -e ".[$extras]" >&2
  echo "$want" > "$stamp"
}

command=${1:-app}
shift || true
case "$command" in
  app)
    setup app
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
