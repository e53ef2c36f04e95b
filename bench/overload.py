#!/usr/bin/env python3
"""The sidecar under more load than it can score, admission control on and off in one run.

Starts the release binary on the demo model and items (once with `serving.admission_control =
true`, once with `false`; with `--builds`, each of several binaries so, e.g. the previous build
and this one), and drives it with the `rescore_load` example: closed-loop clients of
1,000-hit requests with `timeout_ms` 50, each waiting 5 ms between its requests. Reports per
concurrency answers/s, scored answers/s, fallbacks by reason, p50/p99 of all answers, of scored
ones and of fallbacks, the sidecar's own time (`took_us`), the CPU time per answer of the sidecar
and of the load generator (which shares the machine's cores unless `--pin`), and the sidecar's
RSS (total and anonymous) before, at the end of each row and `--settle` seconds (10) after the
whole load. "Before" is read `--settle` seconds after a warm-up of 64 clients for 3 s, which
caches the whole demo catalogue: what the sidecar holds once it has served, the state the load
should return to. All sidecars run at once and the rows are interleaved (each client count runs
against every build and setting in turn), so that a change in the machine's other load hits
them alike.

Usage (from the repo root, after `cargo build --release --bin rescore-sidecar --example rescore_load`):
  python3 bench/overload.py [--clients 4,8,16,64,256] [--seconds 15] [--admission off,on]
                            [--builds NAME=PATH,...] [--pin]

`--pin` runs the sidecars on CPU 0 and the load generator on CPU 1 (sched_setaffinity), so that
the client's threads do not take the sidecar's CPU; the sidecar then sizes its workers and
scoring slots for one core.

Not a test: it asserts nothing; it prints a Markdown table for docs/reliability.md.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "rescore-sidecar")
LOAD = os.path.join(ROOT, "target", "release", "examples", "rescore_load")


def cpu_s(pid):
    """User + system CPU seconds the process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid, field="VmRSS"):
    """Resident MB (`RssAnon`: the heap and stacks only, without the binary's and the item
    store's file-backed pages)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_pair(pid):
    return rss_mb(pid), rss_mb(pid, "RssAnon")


PIN = {"sidecar": None, "load": None}


def pinned(role):
    cpus = PIN[role]
    return None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))


def start(binary, admission, work, port):
    name = f"{port}-admission-{'on' if admission else 'off'}"
    config = os.path.join(work, f"{name}.toml")
    with open(config, "w") as f:
        f.write(f"[serving]\nadmission_control = {'true' if admission else 'false'}\n")
    data = os.path.join(work, f"data-{name}")
    p = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", "--models", os.path.join(ROOT, "models"),
                          "--items", os.path.join(ROOT, "demo", "items.jsonl"), "--data-dir", data,
                          "--config", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         preexec_fn=pinned("sidecar"))
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return p
        except OSError:
            time.sleep(0.2)
    sys.exit("the sidecar did not become ready")


def load(port, clients, seconds, timeout_ms):
    """The load generator's summary, with the CPU seconds it used itself."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([LOAD, f"127.0.0.1:{port}", str(clients), "1000", str(seconds), str(timeout_ms), "5"],
                         check=True, capture_output=True, text=True, preexec_fn=pinned("load")).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads(out.strip().splitlines()[-1])
    summary["load_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return summary


def ms(v):
    return "–" if v is None or v != v else f"{v:.1f}"


def table(rows):
    print("| build | admission | clients | answers/s | scored/s | fallbacks | all p50 / p99 ms | scored p50 / p99 ms | fallback p50 / p99 ms | sidecar `took` p99 all / fallback ms | sidecar CPU µs per answer | load generator CPU µs per answer | RSS (anonymous) MB: before / end of row / after all |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        fb = ", ".join(f"{k} {v}" for k, v in r["fallbacks"].items()) or "0"
        print(f"| {r['build']} | {'on' if r['admission_control'] else 'off'} | {r['clients']} | {r['answers_per_s']:.0f} | {r['scored_per_s']:.0f} | {fb} "
              f"| {ms(r['all_p50_ms'])} / {ms(r['all_p99_ms'])} | {ms(r['scored_p50_ms'])} / {ms(r['scored_p99_ms'])} "
              f"| {ms(r['fallback_p50_ms'])} / {ms(r['fallback_p99_ms'])} "
              f"| {ms(r.get('server_p99_ms'))} / {ms(r.get('server_fallback_p99_ms'))} "
              f"| {r['sidecar_cpu_us_per_answer']:.0f} "
              f"| {r['load_cpu_s'] * 1e6 / max(r['answers'], 1):.0f} "
              f"| {' / '.join(f'{t:.0f} ({a:.0f})' for t, a in (r['rss_mb_before'], r['rss_mb_during'], r['rss_mb_after']))} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", default="4,8,16,64,256")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--timeout-ms", type=int, default=50)
    ap.add_argument("--admission", default="off,on", help="admission settings to run: off, on or both")
    ap.add_argument("--builds", default=f"this={BIN}", help="NAME=PATH of each sidecar binary to compare")
    ap.add_argument("--pin", action="store_true", help="sidecars on CPU 0, the load generator on CPU 1")
    ap.add_argument("--settle", type=float, default=10, help="seconds after the last row before the last RSS reading")
    args = ap.parse_args()
    if args.pin:
        PIN.update(sidecar={0}, load={1})
    work = tempfile.mkdtemp(prefix="overload-")
    print(f"# load average before: {os.getloadavg()}; pinned: {args.pin}", flush=True)
    settings = [{"off": False, "on": True}[a] for a in args.admission.split(",")]
    builds = [b.split("=", 1) for b in args.builds.split(",")]
    sidecars = []  # (build, admission, port, process, rss before)
    try:
        for i, (build, binary) in enumerate(builds):
            for admission in settings:
                port = 19300 + 2 * i + int(admission)
                p = start(binary, admission, work, port)
                # Warm: the whole catalogue cached and read from the store's files, the
                # per-hit cost known, so that "before" is the state the load returns to.
                load(port, 64, 3, args.timeout_ms)
                sidecars.append([build, admission, port, p, None])
        time.sleep(args.settle)  # the warm-up's burst ends and its heap is trimmed
        for s in sidecars:
            s[4] = rss_pair(s[3].pid)
        rows = []
        for c in [int(x) for x in args.clients.split(",")]:
            for build, admission, port, p, rss0 in sidecars:
                cpu0 = cpu_s(p.pid)
                r = load(port, c, args.seconds, args.timeout_ms)
                r["sidecar_cpu_us_per_answer"] = (cpu_s(p.pid) - cpu0) * 1e6 / max(r["answers"], 1)
                r.update(build=build, admission_control=admission, port=port,
                         rss_mb_before=rss0, rss_mb_during=rss_pair(p.pid))
                rows.append(r)
                print(json.dumps(r), flush=True)
        time.sleep(args.settle)
        for r in rows:
            r["rss_mb_after"] = next(rss_pair(p.pid) for _, _, port, p, _ in sidecars if port == r["port"])
    finally:
        for *_, p, _ in sidecars:
            p.terminate()
            p.wait()
    print(f"# load average after: {os.getloadavg()}")
    table(rows)


if __name__ == "__main__":
    main()
