#!/usr/bin/env bash
# Checks that rewind compiles with `--features cuda` on a machine that has no
# GPU, no NVIDIA driver and no system CUDA toolkit (CI, laptops).
#
# What it does (each step is skipped when its result is already there):
#   1. installs missing prerequisites on Debian/Ubuntu (python3-pip, gcc) via
#      apt-get when run as root; needs the Rust toolchain already;
#   2. pip-installs NVIDIA's CUDA 13 wheels (nvcc, runtime, nvrtc, cuBLAS,
#      CCCL; ~1.1 GB download) into $CUDA_TOOLCHAIN_DIR/py (default
#      ./.cuda-toolchain, gitignored) and uses .../nvidia/cu13 as CUDA_ROOT;
#   3. builds a link-only stub libcuda.so (soname libcuda.so.1, like NVIDIA's
#      own stub) exporting every `cu*` function that the locked cudarc
#      declares, plus unversioned .so links for nvrtc/cublas/cublasLt;
#   4. puts a stand-in `nvidia-smi` on PATH that prints the compute capability
#      dfdx's build.rs asks for (default 9.0, override with STUB_COMPUTE_CAP);
#   5. runs `cargo build --locked --release --features cuda` and then the same
#      with `--all-targets`, into a separate target dir (default target/cuda)
#      so the CPU build's cache is left alone.
#
# The binaries it produces run only where an NVIDIA driver is installed (the
# stub is never loaded at run time: the binary asks for libcuda.so.1, and the
# CUDA 13 nvrtc/cuBLAS libraries must be on the loader path).
#
# Environment knobs:
#   CUDA_TOOLCHAIN_DIR  download/cache folder        (default: ./.cuda-toolchain)
#   CUDA_TARGET_DIR     cargo --target-dir           (default: ./target/cuda)
#   STUB_COMPUTE_CAP    what the stand-in nvidia-smi reports (default: 9.0)
#   CUDA_CHECK_SKIP_ALL_TARGETS=1  only build the library and binaries
set -euo pipefail

cd "$(dirname "$0")/.."
REPO_ROOT=$PWD

TOOLCHAIN_DIR=${CUDA_TOOLCHAIN_DIR:-$REPO_ROOT/.cuda-toolchain}
TARGET_DIR=${CUDA_TARGET_DIR:-$REPO_ROOT/target/cuda}
STUB_COMPUTE_CAP=${STUB_COMPUTE_CAP:-9.0}

# Pinned so that CI is reproducible; bump together (all CUDA 13.x).
CUDA_WHEELS=(
  nvidia-cuda-nvcc==13.5.37
  nvidia-cuda-runtime==13.5.37
  nvidia-cuda-nvrtc==13.5.37
  nvidia-cublas==13.10.0.20
  nvidia-cuda-cccl==13.3.5.0.6
)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }
declare -a TIMINGS=()
phase_done() {
  TIMINGS+=("$(printf '%-24s %5ds' "$1" "$(($(now) - $2))")")
  log "done: ${TIMINGS[-1]}"
}
on_exit() {
  local rc=$?
  if [ ${#TIMINGS[@]} -gt 0 ]; then printf 'timings:\n' >&2; printf '    %s\n' "${TIMINGS[@]}" >&2; fi
  if [ "$rc" -ne 0 ]; then printf 'error: check_cuda_build.sh failed (exit %d)\n' "$rc" >&2; fi
}
trap on_exit EXIT

# ---------------------------------------------------------------- 1. prerequisites
t0=$(now)
command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain first (rustup)"
missing_pkgs=()
command -v python3 >/dev/null || missing_pkgs+=(python3)
if ! python3 -m pip --version >/dev/null 2>&1; then missing_pkgs+=(python3-pip); fi
command -v cc >/dev/null || missing_pkgs+=(gcc libc6-dev)
if [ ${#missing_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "apt-get install ${missing_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}"
  else
    die "missing ${missing_pkgs[*]} (run as root on Debian/Ubuntu to have them installed)"
  fi
fi
phase_done "prerequisites" "$t0"

# ---------------------------------------------------------------- 2. CUDA wheels
t0=$(now)
PY_DIR=$TOOLCHAIN_DIR/py
STAMP=$PY_DIR/.installed
WANT_STAMP=$(printf '%s\n' "${CUDA_WHEELS[@]}")
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT_STAMP" ]; then
  log "CUDA wheels already in $PY_DIR (skipping download)"
else
  log "pip install --target $PY_DIR ${CUDA_WHEELS[*]} (~1.1 GB download)"
  mkdir -p "$TOOLCHAIN_DIR"
  rm -rf "$PY_DIR.partial" "$PY_DIR"
  python3 -m pip install --quiet --no-cache-dir --disable-pip-version-check \
    --only-binary=:all: --target "$PY_DIR.partial" "${CUDA_WHEELS[@]}"
  printf '%s\n' "$WANT_STAMP" >"$PY_DIR.partial/.installed"
  mv "$PY_DIR.partial" "$PY_DIR"
fi
CUDA_ROOT=$PY_DIR/nvidia/cu13
[ -f "$CUDA_ROOT/include/cuda.h" ] || die "$CUDA_ROOT/include/cuda.h missing (delete $PY_DIR and rerun)"
[ -x "$CUDA_ROOT/bin/nvcc" ] || die "$CUDA_ROOT/bin/nvcc missing (delete $PY_DIR and rerun)"
phase_done "download CUDA wheels" "$t0"

# ---------------------------------------------------------------- 3. stub libcuda + .so links
t0=$(now)
log "cargo fetch --locked (cuda feature)"
cargo fetch --locked
CUDARC_DIR=$(cargo metadata --locked --offline --format-version 1 --features cuda |
  python3 -c '
import json, os, sys
pkgs = [p for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc"]
if len(pkgs) != 1:
    sys.exit("expected exactly one cudarc in the dependency graph, found %d" % len(pkgs))
print(os.path.dirname(pkgs[0]["manifest_path"]))
')
DRIVER_SYS=$CUDARC_DIR/src/driver/sys.rs
[ -f "$DRIVER_SYS" ] || die "$DRIVER_SYS not found"

STUB_DIR=$TOOLCHAIN_DIR/stubs
STUB_SRC=$STUB_DIR/cuda_stub.c
mkdir -p "$STUB_DIR"
python3 - "$DRIVER_SYS" "$STUB_SRC.new" <<'EOF'
import re, sys
src, out = sys.argv[1], sys.argv[2]
names = sorted(set(re.findall(r"\bpub fn (cu[A-Za-z0-9_]+)\s*\(", open(src).read())))
if len(names) < 100:
    sys.exit("only %d cu* functions found in %s; has cudarc's layout changed?" % (len(names), src))
with open(out, "w") as f:
    f.write("/* Generated by scripts/check_cuda_build.sh from %s.\n" % src)
    f.write(" * Link-time stand-in for the NVIDIA driver library: every function\n")
    f.write(" * returns CUDA_ERROR_STUB_LIBRARY (34). Never ship or load it. */\n")
    f.write("#define STUB(name) int name(void) { return 34; }\n")
    for n in names:
        f.write("STUB(%s)\n" % n)
print("%d cu* symbols" % len(names), file=sys.stderr)
EOF
if [ -f "$STUB_DIR/libcuda.so" ] && cmp -s "$STUB_SRC.new" "$STUB_SRC"; then
  rm -f "$STUB_SRC.new"
  log "stub libcuda.so up to date"
else
  mv "$STUB_SRC.new" "$STUB_SRC"
  log "cc -shared -> $STUB_DIR/libcuda.so (soname libcuda.so.1)"
  cc -shared -fPIC -O0 -Wl,-soname,libcuda.so.1 -o "$STUB_DIR/libcuda.so" "$STUB_SRC"
fi
# cudarc links -lnvrtc -lcublas -lcublasLt; the wheels ship only versioned files.
for lib in nvrtc cublas cublasLt; do
  real=$(find "$CUDA_ROOT/lib" -maxdepth 1 -name "lib$lib.so.*" -printf '%f\n' | sort -V | head -n1)
  [ -n "$real" ] || die "no lib$lib.so.* in $CUDA_ROOT/lib"
  ln -sfn "$CUDA_ROOT/lib/$real" "$STUB_DIR/lib$lib.so"
done
phase_done "cargo fetch + stub" "$t0"

# ---------------------------------------------------------------- 4. stand-in nvidia-smi
BIN_DIR=$TOOLCHAIN_DIR/bin
mkdir -p "$BIN_DIR"
cat >"$BIN_DIR/nvidia-smi" <<EOF
#!/bin/sh
# Stand-in for dfdx's build.rs (\`nvidia-smi --query-gpu=compute_cap --format=csv\`).
echo compute_cap
echo "\${STUB_COMPUTE_CAP:-$STUB_COMPUTE_CAP}"
EOF
chmod +x "$BIN_DIR/nvidia-smi"

# ---------------------------------------------------------------- 5. build
export CUDA_ROOT
export PATH=$BIN_DIR:$CUDA_ROOT/bin:$PATH
export LD_LIBRARY_PATH=$STUB_DIR:$CUDA_ROOT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export RUSTFLAGS="${RUSTFLAGS:-} -L native=$STUB_DIR"
export STUB_COMPUTE_CAP
log "CUDA_ROOT=$CUDA_ROOT"
log "nvcc: $(nvcc --version | tail -n1)"

t0=$(now)
log "cargo build --locked --release --features cuda --target-dir $TARGET_DIR"
cargo build --locked --release --features cuda --target-dir "$TARGET_DIR"
phase_done "build (lib + bins)" "$t0"

if [ "${CUDA_CHECK_SKIP_ALL_TARGETS:-0}" != 1 ]; then
  t0=$(now)
  log "cargo build --locked --release --features cuda --all-targets --target-dir $TARGET_DIR"
  cargo build --locked --release --features cuda --all-targets --target-dir "$TARGET_DIR"
  phase_done "build (--all-targets)" "$t0"
fi

log "OK: rewind builds with --features cuda"
