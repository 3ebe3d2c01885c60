#!/usr/bin/env bash
# seda's HTTP source side by side with nginx (one worker) and hyper (current-thread tokio), each
# pinned to CPU 0, driven from CPU 1; rounds interleaved so that the machine's drift hits every
# server alike. Prints each run, then medians and ratios.
#
#   benches/http_vs_peers.sh [--rounds N] [--duration SECONDS] [--only open|hello|static|idle]
#   (SEDA_BIN=path/to/seda measures that build instead of this tree's, for a before and after)
#
# seda runs with each I/O backend: `seda_uring` ("io": "uring") and `seda_epoll` ("io": "epoll"),
# the reactor in its worker (the default); `seda_thread` is epoll with the reactor on a thread.
#
# open:   the server's CPU time per answered request (user + system of the whole process, from
#         /proc, over the measured run only) at fixed open-loop rates of 10k, 50k and 100k/s with
#         64 and 1,000 connections, `seda load` on CPU 1 (after a warmup run), with its p99
#         (corrected latency). configs/http_hello.json vs nginx `return 200` vs hyper.
# hello:  closed loop (`wrk -t1 -c64`) requests/s and the server's CPU per request, plain and
#         16-deep pipelined.
# static: configs/http_static.json vs nginx over 1,000 files whose sizes follow SPECweb99's
#         classes (35% 0.1-0.9 KB, 50% 1-9 KB, 14% 10-90 KB, 1% 100-900 KB), requested at random.
# idle:   resident memory per idle keep-alive connection, 10,000 of them (each has served one
#         request), seda and nginx.
#
# Installs nginx and wrk from Debian's packages when missing (needs root), and builds the hyper
# reference server (benches/peers/hyper-hello, outside the workspace).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ROUNDS=3
DURATION=10
ONLY=all
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        *) echo "usage: $0 [--rounds N] [--duration SECONDS] [--only open|hello|static|idle]" >&2; exit 2 ;;
    esac
done

need() {
    if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$1" ]; then
        echo "== installing $2"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
    fi
}
need wrk wrk
need nginx nginx
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

echo "== building seda and the hyper reference server"
cargo build --release -q
(cd benches/peers/hyper-hello && CARGO_TARGET_DIR="$ROOT/target/peers" cargo build --release -q)
# SEDA_BIN: another seda build to measure (a baseline), instead of this tree's.
SEDA=${SEDA_BIN:-$ROOT/target/release/seda}
HYPER=$ROOT/target/peers/release/hyper-hello

WORK=$(mktemp -d)
# nginx's workers run as an unprivileged user: they must be able to read the files.
chmod 755 "$WORK"
SERVER_PID=
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT

stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

wait_port() {
    for _ in $(seq 1 100); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "server on port $1 did not come up" >&2
    exit 1
}

# The servers, each on CPU 0. $1: what to serve (hello or static), $2: port.
# seda_uring, seda_epoll: the reactor in the worker (the default), with each I/O backend;
# seda_thread: epoll, a reactor thread beside the worker.
run_seda() {
    taskset -c 0 "$SEDA" run "$WORK/seda-http_$1.json" --listen "127.0.0.1:$2" >"$WORK/seda.out" 2>&1 &
    SERVER_PID=$!
    wait_port "$2"
}
start_seda_uring() { run_seda "$1-uring" "$2"; }
start_seda_epoll() { run_seda "$1-epoll" "$2"; }
start_seda_thread() { run_seda "$1-thread" "$2"; }

start_nginx() {
    mkdir -p "$WORK/nginx/logs"
    local location='default_type text/plain; return 200 "Hello, world!\n";'
    if [ "$1" = static ]; then location="root $WORK/www;"; fi
    cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
worker_cpu_affinity 01;
worker_rlimit_nofile 65536;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log;
events { worker_connections 20000; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    default_type application/octet-stream;
    server { listen 127.0.0.1:$2 reuseport; location / { $location } }
}
EOF
    taskset -c 0 "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
    SERVER_PID=$!
    wait_port "$2"
}

# CPU time (user + system, microseconds) the server has used: its process and its children
# (nginx's worker).
server_cpu_us() {
    python3 - "$SERVER_PID" <<'PY'
import os, sys
tick = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])
pids = [int(sys.argv[1])]
try:
    pids += [int(p) for p in open(f"/proc/{sys.argv[1]}/task/{sys.argv[1]}/children").read().split()]
except OSError:
    pass
print(sum(cpu(p) for p in pids) * 1_000_000 // tick)
PY
}

# seda load on CPU 1, open loop at $2/s with $3 connections against port $1: a warmup run, then
# the measured one; prints "server_cpu_us_per_answered_request p99_us rate=ACHIEVED".
drive_open() {
    local url="http://127.0.0.1:$1/"
    taskset -c 1 "$SEDA" load "$url" --rate "$2" -c "$3" --threads 1 -d 2s >/dev/null 2>&1
    local before after
    before=$(server_cpu_us)
    taskset -c 1 "$SEDA" load "$url" --rate "$2" -c "$3" --threads 1 -d "${DURATION}s" --json "$WORK/load.json" \
        >/dev/null 2>&1
    after=$(server_cpu_us)
    python3 - "$WORK/load.json" "$before" "$after" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
cpu_us = int(sys.argv[3]) - int(sys.argv[2])
answered = max(r["responses"], 1)
errors = f" errors={r['errors']}" if r["errors"] else ""
p99 = r["latency_us"]["corrected"]["p99"]
print(f"{cpu_us / answered:.3f} {p99:.0f} rate={r['achieved_rate']:.0f}{errors}")
PY
}

start_hyper() {
    taskset -c 0 "$HYPER" "127.0.0.1:$2" &
    SERVER_PID=$!
    wait_port "$2"
}

# wrk on CPU 1 against port $1 with extra args; prints "requests/s p99_us cpu=US", cpu being the
# server's CPU time per request answered (what to compare when wrk, not the server, is the limit).
drive() {
    local port=$1
    shift
    local before after
    before=$(server_cpu_us)
    taskset -c 1 wrk -t1 -c64 -d"${DURATION}s" --latency "$@" "http://127.0.0.1:$port/" >"$WORK/wrk.out" 2>&1
    after=$(server_cpu_us)
    python3 - "$WORK/wrk.out" "$before" "$after" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
requests = int(re.search(r"(\d+) requests in", text).group(1))
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / max(requests, 1)
m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
p99 = float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", text)
print(f"{rps:.0f} {p99:.0f} cpu={cpu:.3f}" + (f" errors={errors.group(0)!r}" if errors else ""))
EOF
}

cat >"$WORK/pipeline.lua" <<'EOF'
-- 16 requests per write: wrk counts each response.
init = function(args)
    local r = {}
    for i = 1, 16 do r[i] = wrk.format(nil, "/") end
    req = table.concat(r)
end
request = function() return req end
EOF

RESULTS=$WORK/results.txt
: >"$RESULTS"
record() { echo "$1 $2" >>"$RESULTS"; echo "  $1: $2"; }

# A seda config from configs/$1.json with its `root` params pointed at $2 (if given), one with
# each I/O backend, and one with the reactor on a thread of its own (pinned to CPU 0 too).
seda_config() {
    python3 - "$ROOT/configs/$1.json" "$WORK/seda-$1" "${2:-}" <<'EOF'
import json, sys
config = json.load(open(sys.argv[1]))
for stage in config["stages"].values():
    params = stage.get("params") or {}
    if "root" in params and sys.argv[3]:
        params["root"] = sys.argv[3]
# Every client is 127.0.0.1: the idle test's 10,000 connections need the per-client cap raised.
config["source"].update({"max_connections": 20000, "max_connections_per_client": 20000})
for io in ["uring", "epoll"]:
    config["source"]["io"] = io
    json.dump(config, open(sys.argv[2] + f"-{io}.json", "w"), indent=1)
config["source"].update({"reactor": "thread", "cpu": 0})
json.dump(config, open(sys.argv[2] + "-thread.json", "w"), indent=1)
EOF
}

open_loop() {
    seda_config http_hello
    ulimit -n "$(ulimit -Hn)"
    for round in $(seq 1 "$ROUNDS"); do
        echo "== open loop, round $round of $ROUNDS"
        for rate in 10000 50000 100000; do
            for conns in 64 1000; do
                for server in seda_uring seda_epoll hyper nginx; do
                    "start_$server" hello 18080
                    record "open.${rate}.${conns}.$server" "$(drive_open 18080 "$rate" "$conns")"
                    stop_server
                done
            done
        done
    done
}

hello() {
    seda_config http_hello
    for round in $(seq 1 "$ROUNDS"); do
        echo "== hello, round $round of $ROUNDS"
        for server in seda_uring seda_epoll seda_thread nginx hyper; do
            "start_$server" hello 18080
            record "hello.plain.$server" "$(drive 18080)"
            record "hello.pipelined.$server" "$(drive 18080 -s "$WORK/pipeline.lua")"
            stop_server
        done
    done
}

make_files() {
    mkdir -p "$WORK/www"
    python3 - "$WORK/www" "$WORK/static.lua" <<'EOF'
import os, random, sys
random.seed(99)
www, lua = sys.argv[1], sys.argv[2]
# SPECweb99's file classes: (share of files, base size); sizes 1..9 times the base.
classes = [(0.35, 102), (0.50, 1024), (0.14, 10240), (0.01, 102400)]
paths = []
for i in range(1000):
    r, acc = random.random(), 0.0
    for share, base in classes:
        acc += share
        if r <= acc:
            break
    size = base * random.randint(1, 9)
    name = f"f{i:04}.bin"
    with open(os.path.join(www, name), "wb") as f:
        f.write(os.urandom(size))
    paths.append("/" + name)
with open(lua, "w") as f:
    f.write("paths = {" + ",".join(f'"{p}"' for p in paths) + "}\n")
    f.write("math.randomseed(7)\n")
    f.write("request = function() return wrk.format(nil, paths[math.random(#paths)]) end\n")
EOF
}

static() {
    make_files
    seda_config http_static "$WORK/www"
    for round in $(seq 1 "$ROUNDS"); do
        echo "== static, round $round of $ROUNDS"
        for server in seda_uring seda_epoll nginx; do
            "start_$server" static 18080
            record "static.random.$server" "$(drive 18080 -s "$WORK/static.lua")"
            stop_server
        done
    done
}

# Resident memory per idle keep-alive connection: 10,000 connections, each served one request.
idle() {
    seda_config http_hello
    ulimit -n "$(ulimit -Hn)"
    for server in seda_uring seda_epoll nginx; do
        echo "== idle connections, $server"
        "start_$server" hello 18080
        local pid=$SERVER_PID
        if [ "$server" = nginx ]; then pid=$(pgrep -P "$SERVER_PID" | head -1); fi
        record "idle.kib_per_connection.$server" "$(python3 - "$pid" 18080 10000 <<'EOF'
import resource, socket, sys, time
pid, port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
def rss_kib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
def one(s):
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while not got.endswith(b"Hello, world!\n"):
        got += s.recv(4096)
# Warm up with the same pattern, connections closed after: what the server grows once (its
# tables, the pages its latency histograms touch) is not counted against the connections.
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    one(s)
    s.close()
time.sleep(0.5)
before = rss_kib()
conns = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    one(s)
    conns.append(s)
time.sleep(1.0)
after = rss_kib()
print(f"{(after - before) / n:.2f} rss_before_kib={before} rss_after_kib={after}")
EOF
)"
        stop_server
    done
}

case "$ONLY" in
    open) open_loop ;;
    hello) hello ;;
    static) static ;;
    idle) idle ;;
    all) open_loop; hello; static; idle ;;
esac

echo
echo "== medians over $ROUNDS rounds (open: server CPU us per answered request; else requests/s; p99 us) and ratios"
python3 - "$RESULTS" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, *fields = line.split()
    runs.setdefault(name, []).append(float(fields[0]) if fields else 0.0)
    # wrk times only the first response of each pipelined write: no p99 for those runs.
    if len(fields) > 1 and not fields[1].startswith(("errors", "rss")) and ".pipelined." not in name:
        runs.setdefault(name + ".p99", []).append(float(fields[1]))
    for field in fields[2:]:
        if field.startswith("rate="):
            runs.setdefault(name + ".rate", []).append(float(field[5:]))
        if field.startswith("cpu="):
            runs.setdefault(name + ".cpu", []).append(float(field[4:]))
med = {k: statistics.median(v) for k, v in runs.items()}
for k in sorted(med):
    print(f"{k:<40} {med[k]:>12.1f}   (runs: {', '.join(f'{x:.0f}' for x in runs[k])})")
print()
for test in ["hello.plain", "hello.pipelined", "static.random"]:
    for seda in ["seda_uring", "seda_epoll"]:
        s = med.get(f"{test}.{seda}")
        for peer in ["seda_thread", "nginx", "hyper"]:
            p = med.get(f"{test}.{peer}")
            if s and p:
                print(f"{test}: {seda} / {peer} = {s / p:.2f}x requests/s")
            s_cpu, p_cpu = med.get(f"{test}.{seda}.cpu"), med.get(f"{test}.{peer}.cpu")
            if s_cpu and p_cpu:
                print(f"{test}: {seda} / {peer} = {p_cpu / s_cpu:.2f}x requests per server CPU second")
if not any(k.startswith("open.") for k in med):
    sys.exit(0)
print()
print("open loop, server CPU per answered request (us), with p99 (ms) and the rate achieved:")
print("| load | seda_uring | seda_epoll | hyper | nginx | uring / hyper | epoll / hyper | uring / nginx |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for rate in [10000, 50000, 100000]:
    for conns in [64, 1000]:
        key = f"open.{rate}.{conns}"
        def cell(s):
            if f"{key}.{s}" not in med:
                return ""
            p99_ms = med.get(f"{key}.{s}.p99", float("nan")) / 1e3
            rate = med.get(f"{key}.{s}.rate", float("nan")) / 1e3
            return f"{med[f'{key}.{s}']:.2f} (p99 {p99_ms:.1f} ms, {rate:.0f}k/s)"
        def ratio(a, b):
            if f"{key}.{a}" not in med or not med.get(f"{key}.{b}"):
                return ""
            return f"{med[f'{key}.{a}'] / med[f'{key}.{b}']:.2f}x"
        print(f"| {rate // 1000}k/s, {conns:,} connections | {cell('seda_uring')} | {cell('seda_epoll')} | "
              f"{cell('hyper')} | {cell('nginx')} | {ratio('seda_uring', 'hyper')} | "
              f"{ratio('seda_epoll', 'hyper')} | {ratio('seda_uring', 'nginx')} |")
EOF
