#!/usr/bin/env bash
# The README's demo: rotate the demo key on a fresh copy of the demo world, then
# show what still pins the old versions. Runs from the repository root.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rotator="${ROTATOR:-$here/../../.venv/bin/rotator}"
work="$(mktemp -d)"
world="$work/demo-world.yaml"
cp "$here/demo-world.yaml" "$world"
KEY=projects/demo/locations/us-east1/keyRings/ring/cryptoKeys/app

echo "\$ rotator --world demo-world.yaml plan rotate-key --key $KEY --out plan.json"
"$rotator" --world "$world" plan rotate-key --key "$KEY" --out "$work/plan.json"
echo
echo "\$ rotator --world demo-world.yaml apply plan.json --yes"
"$rotator" --world "$world" apply "$work/plan.json" --yes
echo
echo "\$ rotator --world demo-world.yaml status plan.json"
"$rotator" --world "$world" status "$work/plan.json"
echo
echo "\$ rotator --world demo-world.yaml inventory $KEY"
"$rotator" --world "$world" inventory "$KEY"
echo
echo "\$ rotator --world demo-world.yaml plan destroy-versions --key $KEY --set versions=1"
"$rotator" --world "$world" plan destroy-versions --key "$KEY" --set versions=1 || echo "(exit $?)"
echo
echo "\$ rotator --world demo-world.yaml world advance 8d"
"$rotator" --world "$world" world advance 8d
echo
echo "\$ rotator --world demo-world.yaml plan destroy-versions --key $KEY --set versions=1 --out destroy.json"
"$rotator" --world "$world" plan destroy-versions --key "$KEY" --set versions=1 --out "$work/destroy.json"
echo
echo "\$ rotator --world demo-world.yaml apply destroy.json --yes"
"$rotator" --world "$world" apply "$work/destroy.json" --yes
echo
echo "(world and plans kept in $work)"
