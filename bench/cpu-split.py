#!/usr/bin/env python3
"""Where the CPU of an ingest run goes: Weft, the backend's server, the load generator.

    bench/cpu-split.py [--weft BIN] [--seconds 10] [--server-pid PID]... CHANNEL

Starts `weft up` with one broker (`bench`, no trigger) on CHANNEL (sqlite, memory or a
channel URL), runs `weft bench ingest` (closed loop, 32 connections) against it, and
reads the CPU time (user + system, /proc/PID/stat) of `weft up`, of the server processes
(each --server-pid and its children, e.g. the postmaster, nats-server or Kafka's JVM)
and of the load generator, and the machine's idle time (/proc/stat), over the run. Then
the same against the bare handler (`weft bench baseline-http`). Prints CPU seconds per
1,000 accepted events of each, so that on a machine whose cores are all busy the share
of each part is visible. The server's figure includes whatever else uses that server
meanwhile (the load average is printed).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """User + system CPU seconds of one process, 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def tree(pid):
    """pid and its children (one level: the postmaster's backends)."""
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout
    return [pid] + [int(p) for p in out.split()]


def servers_cpu(pids):
    """CPU seconds per process of every server tree, by pid."""
    return {p: cpu_s(p) for root in pids for p in tree(root)}


def idle_s():
    """Idle + iowait seconds of all cores (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    return (int(fields[3]) + int(fields[4])) / TICK


def spawn_listening(args, marker, log):
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True
    )
    deadline = time.time() + 120
    for line in proc.stdout:
        if marker in line:
            return proc, line.split(marker, 1)[1].strip()
        if time.time() > deadline:
            break
    proc.kill()
    sys.exit(f"{args[:2]} did not print {marker!r}")


def measure(weft, target, server_pids, system_pid, seconds):
    load = os.getloadavg()[0]
    before_servers = servers_cpu(server_pids)
    before_system, before_idle, started = cpu_s(system_pid), idle_s(), time.time()
    run = subprocess.run(
        ["/usr/bin/time", "-f", "%U %S", weft, "bench", "ingest", "--target", target,
         "--duration", f"{seconds}s", "--warmup", "0s", "--no-progress", "--json"],
        capture_output=True, text=True, check=True,
    )
    wall = time.time() - started
    after_servers = servers_cpu(server_pids)
    # Processes that ended meanwhile are not counted; the servers' trees are long-lived.
    server = sum(v - before_servers.get(p, 0.0) for p, v in after_servers.items())
    system = cpu_s(system_pid) - before_system
    idle = idle_s() - before_idle
    user, sys_ = (float(x) for x in run.stderr.strip().splitlines()[-1].split())
    report = json.loads(run.stdout)
    # The CPU figures cover the whole run, warm-up and connection set-up included.
    events = report.get("total_accepted", report["accepted"])
    return {
        "load": load,
        "events_per_s": report["accepted_per_s"],
        "events": events,
        "wall_s": wall,
        "system_cpu_s": system,
        "server_cpu_s": server,
        "loadgen_cpu_s": user + sys_,
        "idle_s": idle,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("channel")
    parser.add_argument("--weft", default="target/dist/weft")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--server-pid", type=int, action="append", default=[])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="weft-cpu-split-") as tmp:
        manifests = os.path.join(tmp, "manifests")
        os.mkdir(manifests)
        with open(os.path.join(manifests, "broker.yaml"), "w") as f:
            f.write(
                "apiVersion: eventing.knative.dev/v1\nkind: Broker\n"
                "metadata:\n  name: bench\n  namespace: default\nspec: {}\n"
            )
        up = [args.weft, "up", "-f", manifests, "--data-dir", os.path.join(tmp, "data"),
              "--addr", "127.0.0.1:0"]
        if args.channel != "sqlite":
            up += ["--channel", args.channel]
        with open(os.path.join(tmp, "weft.log"), "w") as log:
            weft, addr = spawn_listening(up, "weft listening on http://", log)
            bare, bare_addr = spawn_listening(
                [args.weft, "bench", "baseline-http", "--addr", "127.0.0.1:0"],
                "listening on http://", log,
            )
            time.sleep(2)
            rows = []
            try:
                for name, proc, url in [
                    ("bare handler", bare, f"http://{bare_addr}/"),
                    ("weft", weft, f"http://{addr}/default/bench"),
                ]:
                    m = measure(args.weft, url, args.server_pid, proc.pid, args.seconds)
                    rows.append((name, m))
            finally:
                for proc in (weft, bare):
                    proc.kill()
                    proc.wait()

    print(f"channel {args.channel}; CPU seconds per 1,000 accepted events "
          f"({os.cpu_count()} cores, closed loop of 32, {args.seconds} s)")
    print("(other: the cores' time used by anything else meanwhile; all columns add up to")
    print(" cores × wall time)")
    print(f"{'target':<13} {'load':>5} {'events/s':>9} {'target':>7} {'server':>7} "
          f"{'loadgen':>8} {'other':>6} {'idle':>6}")
    for name, m in rows:
        k = 1000 / m["events"]
        parts = [m["system_cpu_s"], m["server_cpu_s"], m["loadgen_cpu_s"]]
        other = os.cpu_count() * m["wall_s"] - sum(parts) - m["idle_s"]
        print(f"{name:<13} {m['load']:>5.2f} {m['events_per_s']:>9,.0f} "
              + " ".join(f"{p * k:>7.3f}" for p in parts[:2])
              + f" {parts[2] * k:>8.3f} {other * k:>6.3f} {m['idle_s'] * k:>6.3f}")


if __name__ == "__main__":
    main()
