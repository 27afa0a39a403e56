#!/usr/bin/env bash
# Set up a virtual environment (.venv) and run the main job on the built-in synthetic
# scroll: make the slices and a segment (.ppm, tifxyz, .obj), convert them to OME-Zarr,
# render the segment's layers (from the .ppm and the tifxyz).
# Usage: bash demo.sh [OUT_DIR]   (default ./sample)
# SAMPLE_SHAPE=Z,Y,X picks the volume size (default 256,512,512, 128 MB of slices);
# PYTHON=/path/to/python3.11 builds .venv from that interpreter (default python3; 3.11+);
# DEMO_PYTHON=/path/to/python skips the virtual environment and uses that interpreter.
# OUT_DIR is created with a marker file (.scrollzarr-demo); a later run deletes only what
# the demo wrote there, and refuses a non-empty directory without the marker.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd -P)
# OUT_DIR is relative to the directory the demo is started from (resolved before the cd)
OUT=$(realpath -m -- "${1:-$HERE/sample}")
MARK=.scrollzarr-demo
PRODUCTS="slices segment.ppm segment_tifxyz segment_tifxyz_1 segment.obj scroll.zarr layers stack.tif layers_tifxyz stack_tifxyz.tif"
cd "$HERE"
# refused before anything is set up or written (checks only; nothing is written yet)
case "$HERE/" in
  "$OUT"/*) echo "error: $OUT: OUT_DIR contains the scrollzarr checkout $HERE; choose another directory" >&2; exit 1 ;;
esac
if [ -e "$OUT" ] || [ -L "$OUT" ]; then
  if [ ! -d "$OUT" ]; then
    echo "error: $OUT: OUT_DIR exists and is not a directory" >&2; exit 1
  elif [ ! -f "$OUT/$MARK" ] && [ -n "$(ls -A -- "$OUT")" ]; then
    echo "error: $OUT: OUT_DIR is not empty and was not made by demo.sh (no $MARK file); choose a new or empty directory" >&2
    exit 1
  fi
fi
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

# only now, with the interpreter ready, is anything written to OUT_DIR
if [ -f "$OUT/$MARK" ]; then
  # ours: delete only what an earlier demo run wrote, nothing else that lies there
  for p in $PRODUCTS; do rm -rf -- "${OUT:?}/$p"; done
fi
mkdir -p -- "$OUT"
echo "made by scrollzarr demo.sh; a later demo run deletes only: $PRODUCTS" > "$OUT/$MARK"

echo "== making the synthetic scroll ($SHAPE) in $OUT"
"$PY" make_sample.py "$OUT" --shape "$SHAPE"
echo "== converting to OME-Zarr: $OUT/scroll.zarr"
"$PY" scroll_to_ome.py "$OUT/slices" "$OUT/scroll.zarr"
if [ -f ppm_to_layers.py ] && [ -f "$OUT/segment.ppm" ]; then
  echo "== rendering the segment's layers: $OUT/layers"
  "$PY" ppm_to_layers.py "$OUT/segment.ppm" "$OUT/scroll.zarr" "$OUT/layers" "$OUT/stack.tif"
fi
# the same segment as VC3D saves it (tifxyz, one vertex every 20 voxels), when this
# ppm_to_layers.py reads surfaces other than .ppm (it then has --flip_normals)
if [ -f ppm_to_layers.py ] && [ -d "$OUT/segment_tifxyz" ] \
    && [[ $("$PY" ppm_to_layers.py --help) == *--flip_normals* ]]; then
  echo "== rendering the tifxyz segment's layers: $OUT/layers_tifxyz"
  "$PY" ppm_to_layers.py "$OUT/segment_tifxyz" "$OUT/scroll.zarr" "$OUT/layers_tifxyz" \
    "$OUT/stack_tifxyz.tif"
fi
echo "== done. View it:  $PY serve_ome.py $OUT/scroll.zarr --neuroglancer"
