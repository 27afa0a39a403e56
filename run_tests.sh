#!/usr/bin/env bash
# Run the whole test suite in a fresh virtual environment (.venv-test), installing what
# the tests need: the pinned Python packages (requirements-test.txt) and, when run as root, Debian's chromium and
# chromium-driver for the real-browser Neuroglancer tests.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=${VENV:-.venv-test}

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "installing chromium and chromium-driver (apt-get)"
    for attempt in 1 2 3; do  # a mirror hiccup should not fail the run
      if apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
          apt-get install -y -qq chromium chromium-driver >/dev/null; then
        break
      fi
      echo "apt-get failed (attempt $attempt); retrying"
      sleep 10
    done
  fi
fi

rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -r requirements-test.txt

exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
