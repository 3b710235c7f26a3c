#!/usr/bin/env bash
# Makes (or reuses) target/test-venv from tests/python/requirements.txt: the real clients
# the tests and the benchmark use (boto3, the aws CLI, grpcio, hvac, OpenBao, moto). Rebuilt
# when the requirements change, or when the checkout has moved (a venv's scripts name their
# interpreter by absolute path). Sourced by scripts/test.sh and the bench scripts.
venv=target/test-venv
want=$({ cat tests/python/requirements.txt; echo "made at $PWD/$venv"; } | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements-sha256" 2>/dev/null)" != "$want" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
  echo "$want" > "$venv/.requirements-sha256"
fi
