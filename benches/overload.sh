#!/usr/bin/env bash
# Overload control, side by side: five policies at one bottleneck stage, under open-loop
# Poisson load from 0.5x to 3x its capacity.
#
# The server (`seda run`, an HTTP pipeline: route, then a `spin` stage of 200 us of CPU on a
# pool of its own, then respond) runs on CPU 0; `seda load` (open loop, Poisson arrivals,
# --slo 20ms) on CPU 1. The policies, at the spin stage's queue:
#
#   large_queue        capacity 100000, reject
#   static_queue       the default queue (4096, reject)
#   latency_target     the default queue + {"kind": "latency_target", "target_ms": 20}
#   concurrency_limit  the default queue + {"kind": "concurrency_limit", "target_ms": 20}
#   codel              the default queue + {"kind": "codel"} (5 ms, 100 ms)
#
# 1. C: the highest rate (a sweep) at which the static queue answers (almost) every request
#    2xx with the corrected p90 <= 20 ms;
# 2. for each policy at 0.5C, 1C, 1.5C, 2C, 3C: goodput (2xx within 20 ms, per second) and the
#    latency of what it served (p50/p90/p99 of the 2xx answers, corrected);
# 3. two service classes, half the requests each (in-process: `seda load` drives the pipeline
#    with a request mix whose path is each request's class), at 2C under latency_target:
#    each class's goodput and p90;
# 4. a step from 0.8C to 1.4C: the server's own end-to-end p90 per 100 ms window (its run
#    record at 50 ms intervals, read back with seda report --from --to), and how long after the
#    step it stays above the 20 ms target;
# 5. LONG seconds at 2C under latency_target: the ledger (from /stats) exact and the server's
#    RSS, sampled every 5 s, flat after the first 10 s.
#
# Usage: benches/overload.sh [STEP_SECONDS] [LONG_SECONDS]   (defaults 5 and 60; 1 and 10 for
# a smoke run). PORT, ADMIN_PORT from the env.
set -euo pipefail

STEP=${1:-5}
LONG=${2:-60}
PORT=${PORT:-18590}
ADMIN_PORT=${ADMIN_PORT:-18591}

cd "$(dirname "$0")/.."
cargo build --release --quiet
SEDA=$PWD/target/release/seda

WORK=$(mktemp -d /tmp/seda-overload.XXXXXX)
SERVER=
cleanup() {
    if [[ -n $SERVER ]]; then
        kill "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# config POLICY SOURCE_JSON > file: the pipeline with the spin stage under POLICY.
config() {
    python3 - "$1" "$2" <<'PY'
import json, sys
policy, source = sys.argv[1], json.loads(sys.argv[2])
work = {"kind": "spin", "pool": "work", "params": {"micros": 200}, "next": "done"}
if policy == "large_queue":
    work["queue"] = {"capacity": 100000, "when_full": "reject"}
elif policy == "latency_target":
    work["admission"] = {"kind": "latency_target", "target_ms": 20}
elif policy == "latency_target_classes":
    work["admission"] = {"kind": "latency_target", "target_ms": 20,
                         "classes": {"attribute": "path", "order": ["/high", "/low"]}}
elif policy == "concurrency_limit":
    work["admission"] = {"kind": "concurrency_limit", "target_ms": 20}
elif policy == "codel":
    work["admission"] = {"kind": "codel"}
stages = {"work": work, "done": {"kind": "respond", "pool": "front", "params": {"status": 200}}}
if source["kind"] == "http":
    stages["route"] = {"kind": "http_route", "pool": "front",
                       "params": {"routes": [{"prefix": "/", "methods": ["GET"], "output": "work"}]},
                       "next": {"work": "work"}}
print(json.dumps({"name": "overload-" + policy, "source": source,
                  "pools": {"front": {"cpus": [0]}, "work": {"cpus": [0]}},
                  "admin": {"listen": f"127.0.0.1:{sys.argv[3] if len(sys.argv) > 3 else 0}"},
                  "stages": stages}))
PY
}

HTTP_SOURCE="{\"kind\": \"http\", \"listen\": \"127.0.0.1:$PORT\", \"entry\": \"route\"}"

start_server() {
    config "$1" "$HTTP_SOURCE" >"$WORK/$1.json"
    python3 - "$WORK/$1.json" "$ADMIN_PORT" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["admin"]["listen"] = "127.0.0.1:" + sys.argv[2]
json.dump(c, open(sys.argv[1], "w"))
PY
    "$SEDA" run "$WORK/$1.json" >"$WORK/$1.server.out" 2>&1 &
    SERVER=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return; fi
        sleep 0.05
    done
    echo "the server for $1 did not start" >&2
    cat "$WORK/$1.server.out" >&2
    exit 1
}

stop_server() {
    kill -TERM "$SERVER"
    wait "$SERVER" || true
    SERVER=
}

# load OUT.json ARGS...: seda load on CPU 1 against the server.
load() {
    local out=$1
    shift
    taskset -c 1 "$SEDA" load "http://127.0.0.1:$PORT/" --cpus 1 --threads 1 -c 256 --pipeline 16 \
        --arrival poisson --slo 20ms --timeout 10s --json "$out" "$@" >/dev/null
}

echo "== capacity: a sweep of the static queue (${STEP} s a step)"
start_server static_queue
load "$WORK/sweep.json" --sweep 1000:7000:500 -d "${STEP}s" --warmup 1s
python3 - "$WORK/sweep.json" <<'PY'
import json, sys
for s in json.load(open(sys.argv[1]))["steps"]:
    print(f"  {s['target_rate']:.0f}/s: errors {s['errors']}, 2xx p90 {s['latency_us']['passed']['p90'] / 1e3:.1f} ms")
PY
stop_server
C=$(python3 - "$WORK/sweep.json" <<'PY'
import json, sys
steps = json.load(open(sys.argv[1]))["steps"]
# Every request answered 2xx (a full queue's 503s are fast, and would flatter the p90), and
# the p90 of the answers within 20 ms.
ok = [s["target_rate"] for s in steps
      if s["errors"] <= s["requests"] / 1000 and s["latency_us"]["passed"]["p90"] <= 20000]
print(int(max(ok)) if ok else 1000)
PY
)
echo "C = $C requests/s (the static queue's highest rate with p90 <= 20 ms)"

echo
echo "== goodput and the latency of what was served, by offered load"
for policy in large_queue static_queue latency_target concurrency_limit codel; do
    for m in 0.5 1 1.5 2 3; do
        rate=$(python3 -c "print(int($C * $m))")
        start_server "$policy"
        load "$WORK/$policy-$m.json" --rate "$rate" -d "${STEP}s" --warmup 1s
        stop_server
    done
done
python3 - "$WORK" "$C" <<'PY'
import json, sys
work, c = sys.argv[1], float(sys.argv[2])
print(f"| policy | load | offered/s | goodput/s | goodput / C | served p50 ms | p90 ms | p99 ms | shed % |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for policy in ["large_queue", "static_queue", "latency_target", "concurrency_limit", "codel"]:
    for m in ["0.5", "1", "1.5", "2", "3"]:
        r = json.load(open(f"{work}/{policy}-{m}.json"))
        p = r["latency_us"]["passed"]
        shed = 100.0 * r["status"].get("5xx", 0) / max(1, r["requests"])
        print(f"| {policy} | {m}C | {r['target_rate']:.0f} | {r['goodput_rps']:.0f} | {r['goodput_rps'] / c:.2f} "
              f"| {p['p50'] / 1e3:.1f} | {p['p90'] / 1e3:.1f} | {p['p99'] / 1e3:.1f} | {shed:.1f} |")
PY

echo
echo "== two service classes at 2C (latency_target with classes; in-process, half the requests each)"
printf 'GET /high 0 1\nGET /low 0 1\n' >"$WORK/mix.txt"
config latency_target_classes "{\"kind\": \"generator\", \"requests\": 1, \"entry\": \"work\"}" >"$WORK/classes.json"
rate=$(python3 -c "print(int($C * 2))")
"$SEDA" load "$WORK/classes.json" --rate "$rate" --arrival poisson --mix "$WORK/mix.txt" \
    -c 256 --pipeline 16 --cpus 1 --slo 20ms -d "${STEP}s" --warmup 1s --json "$WORK/classes.out.json" >/dev/null
python3 - "$WORK/classes.out.json" "$C" <<'PY'
import json, sys
r, c = json.load(open(sys.argv[1])), float(sys.argv[2])
print("| class | offered/s | goodput/s | served p90 ms |")
print("| --- | --- | --- | --- |")
for name, k in sorted(r["by_request"].items()):
    print(f"| {name} | {k['target_rate'] or r['target_rate'] / 2:.0f} | {k['goodput_rps']:.0f} | {k['latency_us']['passed']['p90'] / 1e3:.1f} |")
PY

echo
echo "== a step from 0.8C to 1.4C: the server's own end-to-end p90 per 100 ms (its run record, 50 ms intervals)"
echo "| policy | p90 before the step, ms (worst 100 ms) | worst p90 after it, ms | above 20 ms until, ms after the step |"
echo "| --- | --- | --- | --- |"
# 0.8C for 6 s; a second loader adds 0.6C from 3 s to 6 s. Recovery: from the step to the end of
# the last 100 ms window whose p90 is above the 20 ms target (0 when none is).
for policy in static_queue latency_target concurrency_limit codel; do
    config "$policy" "$HTTP_SOURCE" | python3 -c "import json, sys; c = json.load(sys.stdin); c['metrics_interval_ms'] = 50; print(json.dumps(c))" >"$WORK/step-$policy.json"
    "$SEDA" run "$WORK/step-$policy.json" --record "$WORK/step-$policy.record" >"$WORK/step-$policy.out" 2>&1 &
    SERVER=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
        sleep 0.05
    done
    load "$WORK/step-$policy.base.json" --rate "$(python3 -c "print(int($C * 0.8))")" -d 6s &
    base=$!
    sleep 3
    step_at=$(date +%s.%N)
    load "$WORK/step-$policy.extra.json" --rate "$(python3 -c "print(int($C * 0.6))")" -d 3s
    wait $base
    stop_server
    python3 - "$SEDA" "$WORK/step-$policy.record" "$step_at" "$policy" <<'PY'
import re, subprocess, sys
seda, record, step_at, policy = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
head = open(f"{record}/latency.hlog").read(4096)
started = float(re.search(r"#\[StartTime: ([0-9.]+)", head).group(1))
step = step_at - started
windows = []
t = max(0.0, step - 1.0)
while t < step + 2.5:
    out = subprocess.run([seda, "report", record, "--from", f"{t:.3f}", "--to", f"{t + 0.1:.3f}"],
                         capture_output=True, text=True).stdout
    row = next((l.split() for l in out.splitlines() if l.startswith("end to end")), None)
    windows.append((t - step, float(row[6]) / 1e3 if row else 0.0))
    t += 0.1
before = max((p for w, p in windows if w < 0), default=0.0)
after = [(w, p) for w, p in windows if w >= -0.05]
late = [w for w, p in after if p > 20.0]
worst = max((p for _, p in after), default=0.0)
if not late:
    recovery = "0 (never above)"
elif max(late) >= after[-1][0]:
    recovery = "still above at 2.5 s, the last window measured"
else:
    recovery = f"{(max(late) + 0.1) * 1e3:.0f}"
print(f"| {policy} | {before:.1f} | {worst:.1f} | {recovery} |")
PY
done

echo
echo "== ${LONG} s at 2C under latency_target: the ledger and the server's RSS"
start_server latency_target
rate=$(python3 -c "print(int($C * 2))")
load "$WORK/long.json" --rate "$rate" -d "${LONG}s" &
LOADER=$!
: >"$WORK/rss.txt"
for _ in $(seq $((LONG / 5))); do
    sleep 5
    grep VmRSS "/proc/$SERVER/status" | awk '{print $2}' >>"$WORK/rss.txt"
done
wait $LOADER
curl -s "http://127.0.0.1:$ADMIN_PORT/stats" >"$WORK/stats.json"
stop_server
python3 - "$WORK/stats.json" "$WORK/rss.txt" "$WORK/long.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
l = s["ledger"]
ended = l["completed"] + l["rejected"] + l["failed"] + l["timed_out"] + l["in_flight"]
print(f"ledger: admitted {l['admitted']}, completed {l['completed']}, rejected {l['rejected']}, "
      f"failed {l['failed']}, timed out {l['timed_out']}, in flight {l['in_flight']}: "
      f"{'exact' if ended == l['admitted'] else 'NOT EXACT'}")
rss = [int(x) for x in open(sys.argv[2]).read().split()]
after = rss[2:] if len(rss) > 2 else rss
print(f"RSS (KiB, every 5 s): {rss}; after 10 s: min {min(after)}, max {max(after)}")
r = json.load(open(sys.argv[3]))
print(f"goodput {r['goodput_rps']:.0f}/s, served p90 {r['latency_us']['passed']['p90'] / 1e3:.1f} ms")
PY
