#!/usr/bin/env bash
# `make chaos` / `make chaos-soak`: run chaos scenarios, LANES of them at a time, each on its own
# fresh docker cluster (its own name, network and subnet), and print each report.
#
#   bash scripts/chaos-suite.sh HAFLOW OUT LANES NAME:ROUNDS...
#
# HAFLOW is the haflow executable; a scenario's report goes to OUT/NAME.txt, its JSON object
# (the report's last line) to OUT/NAME.json, its progress (stderr) to OUT/NAME.log and, each
# line prefixed with the scenario's name, to this script's stderr; OUT/NAME.rc holds its exit
# code. The runs start in the order given, each as soon as a lane is free (so list the longest
# first). Once all have ended, the failed ones are named with their failed properties (or their
# log's tail when a run ended without a report); exits 1 if any failed.
set -uo pipefail

if [ "${1:-}" = --one ]; then  # one run, in a lane: --one HAFLOW OUT NAME:ROUNDS
    haflow=$2 out=$3 run=$4
    name=${run%%:*} repeat=${run#*:}
    [ "$repeat" != "$run" ] || repeat=1
    rm -f "$out/$name.txt" "$out/$name.json" "$out/$name.log" "$out/$name.rc"
    started=$SECONDS
    echo "== $haflow chaos run $name --repeat $repeat --json" >&2
    "$haflow" chaos run "$name" --repeat "$repeat" --json > "$out/$name.txt" \
        2> >(tee "$out/$name.log" | sed -u "s/^/[$name] /" >&2)
    rc=$?
    wait  # the log's tee has written everything
    echo "$rc" > "$out/$name.rc"
    tail -n 1 "$out/$name.txt" > "$out/$name.json"
    # the report printed whole once the run has ended (the other lane's progress lines carry
    # their scenario's name)
    echo "== $name: exit $rc after $((SECONDS - started)) s"
    cat "$out/$name.txt"
    exit 0
fi

if [ $# -lt 4 ]; then
    echo "usage: $0 HAFLOW OUT LANES NAME:ROUNDS..." >&2
    exit 2
fi
haflow=$1 out=$2 lanes=$3
shift 3
case $lanes in ''|*[!0-9]*|0) echo "$0: LANES must be a whole number >= 1, not '$lanes'" >&2; exit 2 ;; esac
# a scenario twice would run twice at once, on one cluster name and into one set of files
seen=" "
for run in "$@"; do
    name=${run%%:*}
    case $seen in *" $name "*) echo "$0: scenario '$name' is listed twice (give it NAME:ROUNDS once)" >&2; exit 2 ;; esac
    seen="$seen$name "
done
mkdir -p "$out"
started=$SECONDS
printf '%s\n' "$@" | xargs -d '\n' -P "$lanes" -n 1 bash "$0" --one "$haflow" "$out"

failed=""
for run in "$@"; do
    name=${run%%:*}
    [ "$(cat "$out/$name.rc" 2>/dev/null)" = 0 ] || failed="$failed $name"
done
for name in $failed; do
    echo "-- $name:"
    grep -E -A4 '^P[0-9]+ +(FAIL|NOT_EXERCISED)|^ABORTED|^UNEXERCISED' "$out/$name.txt" 2>/dev/null | grep -v '^{'
    grep -q . "$out/$name.txt" 2>/dev/null || tail -n 40 "$out/$name.log" 2>/dev/null
done
if [ -n "$failed" ]; then
    echo "chaos: FAILED:$failed (after $((SECONDS - started)) s, $lanes at a time)"
    exit 1
fi
echo "chaos: all $# passed (after $((SECONDS - started)) s, $lanes at a time)"
