#!/usr/bin/env python3
"""Runs every shell command shown in README.md and docs/guide.md, as a reader would type it.

The ```sh blocks of a page run in order as one bash script (so `cmd & sleep 1` works, and a
server started in one block serves the next), `set -e`, in a scratch
directory holding copies of configs/ and examples/, with `seda` (on the PATH) and the examples'
binaries taken from target/release; whatever a page leaves running is stopped when it ends. A ```json block that the text just before it names a file of
(`Save this as `mine.json``, `Replace `first.json` with`) is written to that file first, so the commands read exactly the
config the page shows. Commands a reader stops by hand are bounded here:

- a server (`seda run` of a config whose source is `http`) runs in the background until its port
  answers, and is stopped at the end of its block;
- `seda top` without `--once` runs for two seconds.

A command shown failing on purpose says so in its comment (`# exits 3`), and must exit so.
Skipped: `cargo install`, `cargo test` and `scripts/test` (CI runs the tests on their own). Exits non-zero, naming the file and block, if any command
fails.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PAGES = ["README.md", "docs/guide.md"]
RELEASE = os.path.join(ROOT, "target", "release")

PRELUDE = """set -euo pipefail
export PATH="%(bin)s:$PATH"
wait_port() {
    for _ in $(seq 1 200); do
        (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing answers on port $1" >&2
    return 1
}
servers=()
stop_servers() {
    for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" || true; done
    servers=()
}
# Whatever else a page started in the background (`cmd &`) ends with the page too: it holds the
# output this script's caller reads to its end.
stop_all() {
    stop_servers
    local pids
    pids=$(jobs -p)
    if [ -n "$pids" ]; then kill -TERM $pids 2>/dev/null || true; wait $pids 2>/dev/null || true; fi
}
trap stop_all EXIT
"""


def blocks(text):
    """(language, body, the text just before the block) for each fenced block."""
    out = []
    for m in re.finditer(r"```(\w*)\n(.*?)```", text, re.S):
        before = text[max(0, m.start() - 400) : m.start()]
        out.append((m.group(1), m.group(2), before))
    return out


def shell_line(line):
    """The line as the script runs it, or None to skip it. A comment `# exits N` says the
    command is shown failing on purpose: it must exit with N."""
    expected = re.search(r"#.*\bexits (\d+)", line)
    command = shell_command(line)
    if command and expected:
        return f"set +e; {command}; code=$?; set -e; [ $code -eq {expected.group(1)} ]"
    return command


def shell_command(line):
    bare = line.split("#", 1)[0].strip() if not line.lstrip().startswith("printf") else line.strip()
    if not bare:
        return None
    if bare.startswith("cargo install") or bare.startswith("cargo test") or bare.startswith("scripts/test"):
        return None
    # `cargo run --release --example NAME -- ARGS` and `cargo run --release -- ARGS`: the built
    # binaries (CI built them with the same command just before).
    bare = re.sub(r"cargo run --release --example (\w+) --", RELEASE + r"/examples/\1", bare)
    bare = re.sub(r"cargo run --release --example (\w+)$", RELEASE + r"/examples/\1", bare)
    bare = bare.replace("cargo run --release --", "seda")
    server = re.match(r"seda run (configs/http_\w+\.json)(.*)$", bare)
    if server and "&" not in bare:
        # The one before it (the same port) stops first.
        return f"stop_servers; seda run {server.group(1)}{server.group(2)} > server.log 2>&1 & servers+=($!); wait_port 8080"
    if re.match(r"seda top ", bare) and "--once" not in bare:
        return f"timeout 2 {RELEASE}/{bare} > /dev/null || [ $? -eq 124 ]"
    return bare


def run_page(script, case, timeout=900):
    """Runs a page's script in a process group of its own, its output going to files: whatever
    it left running (a server a block started and did not stop) is ended with the group, and
    cannot hold the run open by holding its output pipe."""
    out_path, err_path = os.path.join(case, ".stdout"), os.path.join(case, ".stderr")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        process = subprocess.Popen(["bash", "-c", script], cwd=case, stdout=out, stderr=err, start_new_session=True)
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            returncode = f"timed out after {timeout} s"
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(2)
        if process.poll() is None:
            process.wait()
    return returncode, open(out_path).read(), open(err_path).read()


def main():
    failures = 0
    work = tempfile.mkdtemp(prefix="seda-doc-commands-")
    try:
        for page in PAGES:
            text = open(os.path.join(ROOT, page)).read()
            case = os.path.join(work, page.replace("/", "_"))
            os.makedirs(case)
            for sub in ["configs", "examples"]:
                shutil.copytree(os.path.join(ROOT, sub), os.path.join(case, sub))
            # `seda` on the PATH, as a reader has it after `cargo install`: `seda run ... &` is then
            # the server's own process, which `kill $!` stops.
            bin_dir = os.path.join(case, "bin")
            os.makedirs(bin_dir)
            os.symlink(os.path.join(RELEASE, "seda"), os.path.join(bin_dir, "seda"))
            script = PRELUDE % {"bin": bin_dir}
            shown = []
            for n, (lang, body, before) in enumerate(blocks(text)):
                if lang == "json":
                    paragraph = before.strip().split("\n\n")[-1]
                    saved = re.search(r"(?:[Ss]ave (?:this|it) as|[Rr]eplace)\s+`([\w.-]+\.json)`", paragraph)
                    if saved:
                        with open(os.path.join(case, saved.group(1)), "w") as f:
                            f.write(body)
                    continue
                if lang != "sh":
                    continue
                lines = [l for l in (shell_line(l) for l in body.splitlines()) if l]
                if lines:
                    # Servers stay up from the block that starts them to the blocks that use them.
                    script += f"echo '### {page} block {n}' >&2\n" + "\n".join(lines) + "\n"
                    shown += lines
            returncode, stdout, stderr = run_page(script, case)
            for l in shown:
                print(f"    $ {l}")
            if returncode == 0:
                print(f"{page}: every command ran")
            else:
                failures += 1
                print(f"{page}: FAILED (exit {returncode}); the last block it ran, and its output:")
                print(stdout[-3000:])
                print(stderr[-4000:])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"doc commands: {failures} page(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
