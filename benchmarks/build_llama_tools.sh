#!/usr/bin/env bash
# Build llama.cpp's own `llama-bench` and `llama-server` from the llama.cpp sources vendored in the
# llama-cpp-python 0.3.36 sdist, for measurement only (benchmarks/side_by_side.py), and make a
# separate venv with llama-cpp-python[server]. Nothing lands in the repo or in the project venv.
#
#   benchmarks/build_llama_tools.sh            # ~6-8 min on 2 cores the first time; then a no-op
#
# Outputs:
#   ~/.cache/slmnode/llama-tools/bin/llama-bench, llama-server
#   ~/.cache/slmnode/lcpp-server-venv/bin/python   (llama-cpp-python[server]==0.3.36)
set -euo pipefail

VERSION=0.3.36
CACHE="${SLMNODE_TOOLS_CACHE:-$HOME/.cache/slmnode}"
TOOLS="$CACHE/llama-tools"
VENV="$CACHE/lcpp-server-venv"
JOBS="${JOBS:-2}"
mkdir -p "$TOOLS"

# 1. The llama.cpp sources: uv's unpacked sdist if present, else pip download the sdist.
SRC=""
for d in "$HOME"/.cache/uv/sdists-v10/pypi/llama-cpp-python/$VERSION/*/src/vendor/llama.cpp; do
  if [ -f "$d/CMakeLists.txt" ]; then SRC="$d"; break; fi
done
if [ -z "$SRC" ]; then
  if [ ! -f "$TOOLS/src/vendor/llama.cpp/CMakeLists.txt" ]; then
    python3 -m pip download --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$TOOLS/sdist"
    mkdir -p "$TOOLS/src"
    tar -xzf "$TOOLS"/sdist/llama_cpp_python-$VERSION.tar.gz -C "$TOOLS/src" --strip-components=1
  fi
  SRC="$TOOLS/src/vendor/llama.cpp"
fi
echo "llama.cpp sources: $SRC"

# 2. llama-bench and llama-server only, out of tree.
if [ ! -x "$TOOLS/bin/llama-bench" ] || [ ! -x "$TOOLS/bin/llama-server" ]; then
  GEN=()
  command -v ninja >/dev/null && GEN=(-G Ninja)
  cmake -S "$SRC" -B "$TOOLS/build" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF
  cmake --build "$TOOLS/build" --target llama-bench llama-server -j "$JOBS"
  mkdir -p "$TOOLS/bin"
  cp "$TOOLS/build/bin/llama-bench" "$TOOLS/build/bin/llama-server" "$TOOLS/bin/"
fi
"$TOOLS/bin/llama-bench" --help >/dev/null
echo "built: $TOOLS/bin/llama-bench $TOOLS/bin/llama-server"

# 3. llama-cpp-python[server] in its own venv (the wheel is usually in uv's cache already).
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
  # Prefer a wheel uv already built for the project venv (building one takes ~6 min).
  WHEEL=$(ls -t "$HOME"/.cache/uv/sdists-v10/pypi/llama-cpp-python/$VERSION/*/llama_cpp_python-$VERSION-*.whl 2>/dev/null | head -1 || true)
  SPEC="llama-cpp-python[server]==$VERSION"
  [ -n "$WHEEL" ] && SPEC="llama-cpp-python[server] @ file://$WHEEL"
  if command -v uv >/dev/null; then
    [ -x "$VENV/bin/python" ] || uv venv --python 3.11 "$VENV" 2>/dev/null || uv venv "$VENV"
    uv pip install --python "$VENV/bin/python" "$SPEC"
  else
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install "$SPEC"
  fi
fi
"$VENV/bin/python" -c "import llama_cpp, llama_cpp.server; print('llama-cpp-python[server]', llama_cpp.__version__)"
