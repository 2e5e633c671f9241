#!/usr/bin/env bash
# The README's demo: rotate the demo key on a fresh copy of the demo world (Cloud
# Storage, Firestore, Dataflow, Cloud Run, functions), destroy what is free, and roll
# the destruction back.
# Runs from anywhere; ROTATOR overrides the rotator to run.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rotator="${ROTATOR:-$here/../../.venv/bin/rotator}"
work="$(mktemp -d)"
cp "$here/demo-world.yaml" "$work/demo-world.yaml"
cd "$work"
KEY=projects/demo/locations/us-east1/keyRings/ring/cryptoKeys/app

run() {  # show the command as a user types it, run it, show a non-zero exit
  echo "\$ rotator $*"
  "$rotator" "$@"
  local code=$?
  [ "$code" -eq 0 ] || echo "(exit $code)"
  echo
  return 0
}

run --world demo-world.yaml plan rotate-key --key "$KEY" --out plan.json
run --world demo-world.yaml apply plan.json --yes
run --world demo-world.yaml world advance 6h
run --world demo-world.yaml apply plan.json --yes
run --world demo-world.yaml status plan.json
run --world demo-world.yaml plan destroy-versions --key "$KEY" --set versions=1
run --world demo-world.yaml world advance 14d
run --world demo-world.yaml plan destroy-versions --key "$KEY" --set versions=1 --out destroy.json
run --world demo-world.yaml apply destroy.json --yes
run --world demo-world.yaml plan rollback --set plan=destroy.json --out rollback.json
run --world demo-world.yaml apply rollback.json --yes
echo "(world and plans kept in $work)"
