#!/usr/bin/env bash
# The pool-size and batching controllers, each against fixed settings, side by side in one run.
#
# Pool size. A pipeline whose middle stage blocks its worker for 1 ms a request (`block`, as a
# synchronous read would) on a pool of its own (CPU 1), fed at 4000 requests/s by the in-process
# generator (front stages on CPU 0): it needs about four threads. Each pool setting:
#
#   fixed_1        "threads": 1                      (the default)
#   fixed_16       "threads": 16
#   grows_1_to_16  "threads": 1, "max_threads": 16   (the pool-size controller)
#
# and, for contrast, the same stage spinning 200 us of CPU at 6000/s (more than one CPU can
# serve): a CPU-bound queue, which the controller must not grow for:
#
#   cpu_fixed_1 / cpu_grows_1_to_16
#
# Printed: end-to-end p50/p99 (ms), completions per second, the most threads serving in any
# metrics interval (the run record's counters.csv), and CPU time per request (us).
#
# Batching. noop stages across two pools (CPU 0 -> CPU 1), the generator as fast as admission
# allows: the hop's queue with a fixed batch of 32 (the default), of 1, and "adaptive".
# Printed: completions per second and CPU time per request; the median of ROUNDS rounds.
#
# Usage: benches/controllers.sh [ROUNDS]   (default 3)
set -euo pipefail

ROUNDS=${1:-3}
cd "$(dirname "$0")/.."
cargo build --release --quiet
SEDA=$PWD/target/release/seda
WORK=$(mktemp -d /tmp/seda-controllers.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# pool_config NAME KIND MICROS RATE REQUESTS POOL_JSON > file
pool_config() {
    python3 - "$@" <<'PY'
import json, sys
name, kind, micros, rate, requests, pool = sys.argv[1:7]
disk = {"cpus": [1]}
disk.update(json.loads(pool))
print(json.dumps({
    "name": name, "metrics_interval_ms": 100,
    "source": {"kind": "generator", "requests": int(requests), "rate": float(rate), "entry": "parse"},
    "pools": {"front": {"cpus": [0]}, "disk": disk},
    "stages": {
        "parse": {"kind": "noop", "pool": "front", "next": "work"},
        "work": {"kind": kind, "pool": "disk", "params": {"micros": int(micros)},
                 "queue": {"capacity": 100000}, "next": "done"},
        "done": {"kind": "respond", "pool": "front"},
    },
}))
PY
}

# run NAME CONFIG: seda run --json --record, timed; prints NAME p50 p99 rps threads cpu_us
run() {
    local name=$1 config=$2
    rm -rf "$WORK/$name.rec"
    /usr/bin/time -f '%U %S' -o "$WORK/$name.time" "$SEDA" run "$config" --json "$WORK/$name.json" \
        --record "$WORK/$name.rec" >/dev/null
    python3 - "$name" "$WORK/$name.json" "$WORK/$name.time" "$WORK/$name.rec/counters.csv" <<'PY'
import csv, json, sys
name, summary, timing, counters = sys.argv[1:5]
s = json.load(open(summary))
user, system = map(float, open(timing).read().split()[-2:])
done = s["ledger"]["completed"]
threads = max(int(r["pool_threads"]) for r in csv.DictReader(open(counters)) if r["stage"] == "work")
print(f'{name:<20} {s["latency_us"]["p50"]/1e3:>9.2f} {s["latency_us"]["p99"]/1e3:>9.2f} '
      f'{s["throughput_rps"]:>9.0f} {threads:>8} {(user + system) * 1e6 / done:>12.1f}')
PY
}

echo "== pool size: a stage that blocks 1 ms, 4000/s; one that spins 200 us, 6000/s"
printf '%-20s %9s %9s %9s %8s %12s\n' policy "p50 ms" "p99 ms" "rps" threads "cpu us/req"
for spec in 'fixed_1|block|1000|4000|{"threads": 1}' \
            'fixed_16|block|1000|4000|{"threads": 16}' \
            'grows_1_to_16|block|1000|4000|{"threads": 1, "max_threads": 16}' \
            'cpu_fixed_1|spin|200|6000|{"threads": 1}' \
            'cpu_grows_1_to_16|spin|200|6000|{"threads": 1, "max_threads": 16}'; do
    IFS='|' read -r name kind micros rate pool <<<"$spec"
    pool_config "$name" "$kind" "$micros" "$rate" 20000 "$pool" >"$WORK/$name.cfg.json"
    run "$name" "$WORK/$name.cfg.json"
done

# batch_config NAME BATCH > file
batch_config() {
    python3 - "$@" <<'PY'
import json, sys
name, batch = sys.argv[1:3]
batch = batch if batch == "adaptive" else int(batch)
print(json.dumps({
    "name": name,
    "source": {"kind": "generator", "requests": 3000000, "rate": "max", "entry": "a"},
    "pools": {"front": {"cpus": [0]}, "back": {"cpus": [1]}},
    "stages": {
        "a": {"kind": "noop", "pool": "front", "next": "b"},
        "b": {"kind": "noop", "pool": "back", "queue": {"batch": batch}, "next": "c"},
        "c": {"kind": "noop", "pool": "back", "next": "done"},
        "done": {"kind": "respond", "pool": "back"},
    },
}))
PY
}

echo
echo "== batching: noop across two pools, as fast as admission allows (median of $ROUNDS rounds)"
for batch in 32 1 adaptive; do batch_config "batch_$batch" "$batch" >"$WORK/batch_$batch.cfg.json"; done
: >"$WORK/batch.results"
for round in $(seq "$ROUNDS"); do
    for batch in 32 1 adaptive; do
        name=batch_$batch
        /usr/bin/time -f '%U %S' -o "$WORK/$name.time" "$SEDA" run "$WORK/$name.cfg.json" --json "$WORK/$name.json" >/dev/null
        python3 - "$name" "$WORK/$name.json" "$WORK/$name.time" >>"$WORK/batch.results" <<'PY'
import json, sys
name, summary, timing = sys.argv[1:4]
s = json.load(open(summary))
user, system = map(float, open(timing).read().split()[-2:])
print(name, s["throughput_rps"], (user + system) * 1e6 / s["ledger"]["completed"])
PY
    done
done
python3 - "$WORK/batch.results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, cpu = line.split()
    rows.setdefault(name, []).append((float(rps), float(cpu)))
base = statistics.median(r for r, _ in rows["batch_32"])
print(f'{"batch":<16} {"rps":>12} {"vs 32":>7} {"cpu us/req":>11}')
for name, runs in rows.items():
    rps = statistics.median(r for r, _ in runs)
    cpu = statistics.median(c for _, c in runs)
    print(f'{name:<16} {rps:>12.0f} {rps / base:>7.2f} {cpu:>11.3f}')
PY
