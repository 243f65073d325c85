#!/usr/bin/env bash
# Build the project's virtual environment from requirements.lock, with the
# least disk at any moment: PyPI's Linux torch 2.3.1 is the CUDA build, whose
# torch, triton and nvidia-* wheels are 2.6 GB to download and 5.1 GB unpacked.
# Each of those is installed alone with no wheel cache, so a download is
# deleted as soon as it is unpacked (peak about 6.5 GB, against about 11 GB for
# one cached 'pip install -r'). The rest follows in one call. The lock is the
# whole resolved set, so every call runs with --no-deps and 'pip check'
# confirms nothing is missing.
# Usage: .ci/make_venv.sh VENV PIP_VERSION
set -euo pipefail
venv=$1
pip_version=$2
cd "$(dirname "$0")/.."
py="$(bash .ci/find_python310.sh)"
need_gb=7
free_gb=$(df -Pk . | awk 'NR==2 {print int($4 / 1048576)}')
if [ "$free_gb" -lt "$need_gb" ]; then
  echo "warning: $venv needs about $need_gb GB of disk while it installs; $(pwd) has $free_gb GB free" >&2
fi
echo "Creating $venv with $py (about 2 minutes and 5.7 GB on a fresh machine)"
rm -rf "$venv"
"$py" -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir)
"${pip[@]}" "pip==$pip_version"
big=$(grep -E '^(torch|triton|nvidia-[a-z0-9-]+)==' requirements.lock)
for req in $big; do
  "${pip[@]}" --no-deps "$req"
done
"${pip[@]}" --no-deps -r requirements.lock
"${pip[@]}" --no-deps --no-build-isolation -e .
"$venv/bin/python" -m pip check --disable-pip-version-check
