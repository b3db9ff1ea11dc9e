#!/usr/bin/env bash
# Installs the fleet rollout's controller side in one command: ansible-core (pinned in
# requirements.txt) from PyPI into fleet/.venv (git-ignored). Needs python3 with venv.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/ansible-playbook ] || ! .venv/bin/pip freeze 2>/dev/null | grep -qxF -f <(grep -v '^#' requirements.txt); then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
fi
.venv/bin/ansible-playbook --version | sed -n 1p
