#!/usr/bin/env bash
# Print the path of a CPython 3.10 interpreter (Lava 0.10.0 requires >=3.10,<3.11).
# Order: $PYTHON, python3.10 on PATH, pyenv's 3.10 installs.
is310() { [ -x "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; }
cands=()
[ -n "${PYTHON:-}" ] && cands+=("$PYTHON")
command -v python3.10 >/dev/null 2>&1 && cands+=("$(command -v python3.10)")
roots=()
command -v pyenv >/dev/null 2>&1 && roots+=("$(pyenv root)")
roots+=("${PYENV_ROOT:-$HOME/.pyenv}" /root/.pyenv /opt/pyenv)
for r in "${roots[@]}"; do
  for p in "$r"/versions/3.10*/bin/python3.10; do cands+=("$p"); done
done
for c in "${cands[@]}"; do
  if is310 "$c"; then echo "$c"; exit 0; fi
done
echo "error: no CPython 3.10 found (Lava 0.10.0 needs Python 3.10): install one, e.g. 'pyenv install 3.10.13', or set PYTHON=/path/to/python3.10" >&2
exit 1
