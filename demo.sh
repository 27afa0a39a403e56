#!/usr/bin/env bash
# Set up a virtual environment (.venv) and run the main job on the built-in synthetic
# scroll: make the slices and a segment, convert them to OME-Zarr, render the segment's
# layers. Usage: bash demo.sh [OUT_DIR]   (default ./sample)
# SAMPLE_SHAPE=Z,Y,X picks the volume size (default 256,512,512, 128 MB of slices);
# PYTHON=/path/to/python3.11 builds .venv from that interpreter (default python3; 3.11+);
# DEMO_PYTHON=/path/to/python skips the virtual environment and uses that interpreter.
set -euo pipefail
cd "$(dirname "$0")"
OUT=${1:-sample}
SHAPE=${SAMPLE_SHAPE:-256,512,512}

if [ -n "${DEMO_PYTHON:-}" ]; then
  PY=$DEMO_PYTHON
else
  BASE=${PYTHON:-python3}
  if ! "$BASE" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: demo.sh needs Python >= 3.11; $BASE is $("$BASE" -V 2>&1 || echo missing) (set PYTHON=/path/to/python3.11)" >&2
    exit 1
  fi
  PY=.venv/bin/python
  # rebuild .venv when the requirements or the interpreter it was made from changed
  base_id=$("$BASE" -c 'import sys; print(sys.executable, sys.version)')
  stamp=.venv/.requirements-$(sha1sum requirements.txt | cut -c1-12)-$(echo "$base_id" | sha1sum | cut -c1-12)
  if [ ! -f "$stamp" ] || ! "$PY" -c '' 2>/dev/null; then
    echo "== setting up .venv with $("$BASE" -V 2>&1) (pip install -r requirements.txt)"
    rm -rf .venv
    "$BASE" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -r requirements.txt
    touch "$stamp"
  fi
fi

rm -rf "$OUT"
echo "== making the synthetic scroll ($SHAPE) in $OUT"
"$PY" make_sample.py "$OUT" --shape "$SHAPE"
echo "== converting to OME-Zarr: $OUT/scroll.zarr"
"$PY" scroll_to_ome.py "$OUT/slices" "$OUT/scroll.zarr"
if [ -f ppm_to_layers.py ] && [ -f "$OUT/segment.ppm" ]; then
  echo "== rendering the segment's layers: $OUT/layers"
  "$PY" ppm_to_layers.py "$OUT/segment.ppm" "$OUT/scroll.zarr" "$OUT/layers" "$OUT/stack.tif"
fi
echo "== done. View it:  $PY serve_ome.py $OUT/scroll.zarr --neuroglancer"
