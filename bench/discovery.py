"""Discovery GETs per second: fedisocial against a bare Starlette app, same bytes, same run.

Measures, for the actor document (``GET /users/alice`` as
``application/activity+json``), WebFinger and NodeInfo 2.1:

* saturation throughput (requests/s) and p50/p99 latency with ``wrk``, for a
  throwaway fedisocial instance (``fedisocial serve --workers 2``) and for
  ``bench/bare_app.py`` (bare Starlette under the same uvicorn settings)
  serving the exact bytes fedisocial returned;
* the achieved rate and p99 latency at a fixed offered rate (5,000 requests/s
  by default), paced by a wrk Lua ``delay()``;
* the resident memory of an idle one-process instance.

It prints figures and checks them against the targets from the issue; it
never fails on them. The load generator shares the machine's cores with the
servers, so absolute figures understate what the servers could do alone.

Run::

    .venv/bin/python bench/discovery.py [--duration 10] [--connections 64]

Needs ``wrk`` (Debian/Ubuntu: ``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
FEDISOCIAL = str(VENV_BIN / "fedisocial") if (VENV_BIN / "fedisocial").exists() else "fedisocial"

ACTIVITY_JSON = "application/activity+json"

TARGET_RPS = 8_000
TARGET_RATIO = 0.60
TARGET_P99_MS = 20.0
TARGET_RSS_MB = 100.0

# Pacing for the fixed-rate run. wrk calls delay() (in the thread's Lua state)
# before each request it sends; returning N makes that connection wait N ms.
# Each thread owns an absolute schedule of send slots spaced threads/rate
# seconds apart, so its connections together send at rate/threads per second
# and each connection waits about connections/rate seconds between requests
# (minus the time its previous response took). Without LuaJIT's ffi clock it
# falls back to a plain connections/rate delay per connection (which then
# undershoots the rate by the response time).
PACED_LUA = r"""
local rate = tonumber(os.getenv("BENCH_RATE"))
local threads = tonumber(os.getenv("BENCH_THREADS"))
local connections = tonumber(os.getenv("BENCH_CONNECTIONS"))
local per_thread_ms = 1000.0 * threads / rate
local per_connection_ms = 1000.0 * connections / rate

local have_ffi, ffi = pcall(require, "ffi")
local now_ms = nil
if have_ffi then
  ffi.cdef[[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clk_id, bench_timespec *tp);
  ]]
  local ts = ffi.new("bench_timespec")
  now_ms = function()
    ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000.0 + tonumber(ts.tv_nsec) / 1e6
  end
end

local next_slot = nil

function delay()
  if now_ms == nil then
    return per_connection_ms
  end
  local now = now_ms()
  if next_slot == nil then
    next_slot = now
  elseif next_slot < now - 50 then
    -- fell behind by more than 50 ms (server too slow): do not burst to catch up
    next_slot = now
  end
  local slot = next_slot
  next_slot = next_slot + per_thread_ms
  local wait = slot - now
  if wait < 0 then
    return 0
  end
  return math.floor(wait + 0.5)
end

function done(summary, latency, requests)
  io.write(string.format("BENCH_PACING %s\n", now_ms and "schedule" or "fixed-delay"))
end
"""


# -- processes ------------------------------------------------------------------------


class Processes:
    """Every process this script starts, each in its own process group, stopped at exit."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        argv: list[str],
        *,
        log: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=cwd,
                env=env,
            )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # the group we created for it
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # uvicorn's worker processes share the group; make sure none outlived it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc)


def run_in_scratch(prefix: str, keep: bool, body: Callable[[Processes, Path], int]) -> int:
    """Run ``body`` with a process registry and a scratch folder, then clean both up.

    SIGTERM and Ctrl-C (even when started in the background) stop every process
    ``body`` started; the folder (logs, databases) is removed unless ``keep``.
    """
    procs = Processes()

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return body(procs, tmp)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping processes", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        if keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def http_get(
    port: int, path: str, accept: str | None = None
) -> tuple[int, str, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Accept": accept} if accept else {})
        resp = conn.getresponse()
        body = resp.read()
        headers = {k: v for k, v in resp.getheaders()}
        return resp.status, resp.getheader("content-type", ""), body, headers
    finally:
        conn.close()


def wait_for(
    port: int, path: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; log:\n{tail(log)}")
        try:
            status, _, _, _ = http_get(port, path)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no answer on :{port}{path} after {timeout:.0f}s; log:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def loaded_accelerators(pids: list[int]) -> str:
    """Which of uvloop and httptools the server processes have loaded (from /proc/PID/maps)."""
    found = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            maps = Path(f"/proc/{pid}/maps").read_text()
            found |= {name for name in ("uvloop", "httptools") if f"/{name}/" in maps}
    return " + ".join(sorted(found, reverse=True)) or "neither uvloop nor httptools"


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU seconds of our waited-for children (here: the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the given processes (0 for any that vanished)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


# -- wrk ------------------------------------------------------------------------------


@dataclass
class WrkResult:
    rps: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    requests: int = 0
    non_2xx: int = 0
    socket_errors: str = ""
    server_cpu_s: float = 0.0
    wrk_cpu_s: float = 0.0
    other_cpu_s: float = 0.0  # busy CPU of processes that are neither the server nor wrk
    elapsed_s: float = 0.0
    pacing: str = ""
    raw: str = field(default="", repr=False)

    @property
    def ok_rps(self) -> float:
        """Requests/s answered 2xx or 3xx (wrk's Requests/sec counts refusals too)."""
        if not self.requests:
            return self.rps
        return self.rps * (self.requests - self.non_2xx) / self.requests

    @property
    def per_cpu_second(self) -> float:
        return self.requests / self.server_cpu_s if self.server_cpu_s else float("nan")

    @property
    def other_cores(self) -> float:
        return self.other_cpu_s / self.elapsed_s if self.elapsed_s else 0.0


def combine(parts: list[WrkResult]) -> WrkResult:
    """One result from runs of the same test: rates pooled, p50 averaged, worst p99 kept."""
    seconds = sum(p.requests / p.rps for p in parts if p.rps)
    requests = sum(p.requests for p in parts)
    return WrkResult(
        rps=requests / seconds if seconds else 0.0,
        p50_ms=sum(p.p50_ms for p in parts) / len(parts),
        p99_ms=max(p.p99_ms for p in parts),
        requests=requests,
        non_2xx=sum(p.non_2xx for p in parts),
        socket_errors="; ".join(p.socket_errors for p in parts if p.socket_errors),
        server_cpu_s=sum(p.server_cpu_s for p in parts),
        wrk_cpu_s=sum(p.wrk_cpu_s for p in parts),
        other_cpu_s=sum(p.other_cpu_s for p in parts),
        elapsed_s=sum(p.elapsed_s for p in parts),
        pacing=parts[0].pacing,
    )


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip())
    if not m:
        return float("nan")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(text: str) -> WrkResult:
    r = WrkResult(raw=text)
    if m := re.search(r"Requests/sec:\s+([\d.]+)", text):
        r.rps = float(m.group(1))
    if m := re.search(r"^\s+50(?:\.000)?%\s+(\S+)", text, re.M):
        r.p50_ms = _ms(m.group(1))
    if m := re.search(r"^\s+99(?:\.000)?%\s+(\S+)", text, re.M):
        r.p99_ms = _ms(m.group(1))
    if m := re.search(r"(\d+) requests in", text):
        r.requests = int(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text):
        r.non_2xx = int(m.group(1))
    if m := re.search(r"Socket errors:\s+(.*)", text):
        r.socket_errors = m.group(1).strip()
    if m := re.search(r"BENCH_PACING (\S+)", text):
        r.pacing = m.group(1)
    return r


def run_wrk(
    url: str,
    accept: str | None,
    *,
    threads: int,
    connections: int,
    duration: float,
    server_pids: list[int],
    script: Path | None = None,
    env: dict[str, str] | None = None,
) -> WrkResult:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
    if accept:
        argv += ["-H", f"Accept: {accept}"]
    if script:
        argv += ["-s", str(script)]
    argv.append(url)
    before = cpu_seconds(server_pids)
    wrk_before, busy_before, started = (
        children_cpu_seconds(),
        machine_busy_seconds(),
        time.monotonic(),
    )
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=duration + 60,
        start_new_session=True,
    )
    result = parse_wrk(done.stdout)
    result.elapsed_s = time.monotonic() - started
    result.server_cpu_s = cpu_seconds(server_pids) - before
    result.wrk_cpu_s = children_cpu_seconds() - wrk_before
    busy = machine_busy_seconds() - busy_before
    result.other_cpu_s = max(0.0, busy - result.server_cpu_s - result.wrk_cpu_s)
    if done.returncode != 0 or not result.rps:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return result


# -- the benchmark --------------------------------------------------------------------


@dataclass
class Endpoint:
    name: str
    path: str
    accept: str | None
    content_type: str = ""
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Row:
    endpoint: Endpoint
    ours: WrkResult
    bare: WrkResult
    ours_paced: WrkResult
    bare_paced: WrkResult


# response headers that belong to the connection or the server, not the document
_SKIP_HEADERS = {
    "date",
    "server",
    "content-length",
    "content-type",
    "connection",
    "transfer-encoding",
    "keep-alive",
}


def make_instance(tmp: Path, port: int, env: dict[str, str]) -> None:
    progress(f"creating a throwaway instance in {tmp}")
    init = [
        FEDISOCIAL,
        "init",
        "--base-url",
        f"http://127.0.0.1:{port}",
        "--data-dir",
        str(tmp / "data"),
    ]
    subprocess.run(init, cwd=tmp, env=env, check=True, capture_output=True, timeout=120)
    subprocess.run(
        [FEDISOCIAL, "user", "create", "alice", "--password-stdin"],
        cwd=tmp,
        env=env,
        input=b"correct horse battery staple\n",
        check=True,
        capture_output=True,
        timeout=120,
    )


def fetch_endpoints(port: int, endpoints: list[Endpoint]) -> None:
    for ep in endpoints:
        status, ctype, body, headers = http_get(port, ep.path, ep.accept)
        if status != 200:
            raise RuntimeError(f"GET {ep.path} answered {status}: {body[:200]!r}")
        ep.content_type, ep.body = ctype, body
        ep.headers = {k: v for k, v in headers.items() if k.lower() not in _SKIP_HEADERS}
        progress(f"  {ep.name}: {len(body)} bytes, {ctype}")


def write_manifest(tmp: Path, endpoints: list[Endpoint]) -> Path:
    routes = []
    for i, ep in enumerate(endpoints):
        body_file = tmp / f"body{i}.bin"
        body_file.write_bytes(ep.body)
        routes.append(
            {
                "path": ep.path.split("?", 1)[0],
                "body_file": str(body_file),
                "content_type": ep.content_type,
                "headers": ep.headers,
            }
        )
    manifest = tmp / "bare_manifest.json"
    manifest.write_text(json.dumps({"routes": routes}, indent=2), encoding="utf-8")
    return manifest


def check_bare(port: int, endpoints: list[Endpoint]) -> None:
    for ep in endpoints:
        status, ctype, body, _ = http_get(port, ep.path, ep.accept)
        if status != 200 or ctype != ep.content_type or body != ep.body:
            raise RuntimeError(f"bare app differs on {ep.path}: {status} {ctype} {len(body)} bytes")


def idle_rss(procs: Processes, tmp: Path, env: dict[str, str]) -> float:
    port = free_port()
    log = tmp / "serve-idle.log"
    progress(f"idle RSS: starting `fedisocial serve --port {port}` (one process)")
    proc = procs.start([FEDISOCIAL, "serve", "--port", str(port)], log=log, cwd=tmp, env=env)
    try:
        wait_for(port, "/.well-known/nodeinfo", proc, log)
        time.sleep(2)
        pids = process_tree(proc.pid)
        total_kb = sum(rss_kb(p) for p in pids)
        progress(f"  {len(pids)} process(es), VmRSS {total_kb / 1024:.1f} MB")
        return total_kb / 1024
    finally:
        procs.stop(proc)


def mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def fmt_rps(x: float) -> str:
    return f"{x:,.0f}"


def print_report(rows: list[Row], rss_mb: float | None, args: argparse.Namespace) -> None:
    rate = args.rate
    print()
    print(
        f"Discovery GETs, {args.workers} uvicorn workers each, wrk -t{args.threads} "
        f"-c{args.connections}, saturation 2 x {args.duration / 2:g}s (A-B-B-A), "
        f"fixed rate {args.duration:g}s, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d')}"
    )
    print(
        f"Targets: fedisocial ≥ {TARGET_RPS:,} req/s, ≥ {TARGET_RATIO:.0%} of bare, "
        f"p99 < {TARGET_P99_MS:g} ms at {rate:,}/s; idle RSS < {TARGET_RSS_MB:g} MB"
    )
    print()
    header = (
        "endpoint",
        "fedisocial req/s",
        "bare req/s",
        "ratio",
        "p50/p99 ms fedi | bare",
        f"at {rate:,}/s: rate, p99 fedi | bare",
    )
    table = [header]
    for r in rows:
        ratio = r.ours.rps / r.bare.rps if r.bare.rps else 0.0
        reached = r.ours_paced.rps >= 0.95 * rate
        p99_ok = reached and r.ours_paced.p99_ms < TARGET_P99_MS
        table.append(
            (
                r.endpoint.name,
                f"{fmt_rps(r.ours.rps)} {mark(r.ours.rps >= TARGET_RPS)}",
                fmt_rps(r.bare.rps),
                f"{ratio:.0%} {mark(ratio >= TARGET_RATIO)}",
                f"{r.ours.p50_ms:.2f}/{r.ours.p99_ms:.2f} | "
                f"{r.bare.p50_ms:.2f}/{r.bare.p99_ms:.2f}",
                f"{fmt_rps(r.ours_paced.rps)}, {r.ours_paced.p99_ms:.2f} ms {mark(p99_ok)} | "
                f"{fmt_rps(r.bare_paced.rps)}, {r.bare_paced.p99_ms:.2f} ms",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("-+-".join("-" * w for w in widths))
    print()
    print(
        "Requests per server CPU-second at saturation (all workers; insensitive to CPU taken "
        "by wrk\nor other processes), and the load of other processes during those runs:"
    )
    for r in rows:
        ours, bare = r.ours.per_cpu_second, r.bare.per_cpu_second
        print(
            f"  {r.endpoint.name:<10} fedisocial {fmt_rps(ours):>7}   bare {fmt_rps(bare):>7}   "
            f"ratio {ours / bare:.0%}   other load {r.ours.other_cores:.2f} | "
            f"{r.bare.other_cores:.2f} cores"
        )
    problems = [
        f"{r.endpoint.name} ({label}): {res.non_2xx} non-2xx, "
        f"socket errors {res.socket_errors or 'none'}"
        for r in rows
        for label, res in (
            ("fedisocial", r.ours),
            ("bare", r.bare),
            ("fedisocial paced", r.ours_paced),
            ("bare paced", r.bare_paced),
        )
        if res.non_2xx or res.socket_errors
    ]
    for p in problems:
        print(f"  warning: {p}")
    pacing = {r.ours_paced.pacing for r in rows} | {r.bare_paced.pacing for r in rows}
    print(
        f"  fixed-rate pacing: {', '.join(sorted(p for p in pacing if p)) or 'unknown'} "
        f"(✗ on the rate column also when under 95% of {rate:,}/s was reached)"
    )
    print("  saturation p50 is the mean of the two halves, p99 the worse of them")
    busy = [r.ours.other_cores for r in rows] + [r.bare.other_cores for r in rows]
    if max(busy) > 0.2:
        print(
            f"  warning: other processes used up to {max(busy):.2f} cores during the saturation "
            "runs;\n  req/s and ratios are unreliable, trust the per-CPU-second figures more"
        )
    print()
    if rss_mb is not None:
        print(
            f"Idle RSS, one process (`fedisocial serve`): {rss_mb:.1f} MB "
            f"(target < {TARGET_RSS_MB:g} MB) {mark(rss_mb < TARGET_RSS_MB)}"
        )
    print()
    print(
        f"Caveat: wrk runs on the same {os.cpu_count()} cores as the servers, so at saturation "
        "it takes CPU from them;\nabsolute req/s understate a server on its own machine. The "
        "fedisocial/bare ratio is the figure\nthat travels. wrk does not correct for "
        "coordinated omission; p99 at the fixed rate is per sent request."
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Actor, WebFinger and NodeInfo GETs per second: fedisocial (2 workers) "
        "against a bare Starlette app serving the same bytes, plus the idle RSS of one process. "
        "Prints figures; never asserts.",
    )
    parser.add_argument(
        "--duration", type=float, default=10, help="seconds per measured wrk run (default 10)"
    )
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--workers", type=int, default=2, help="uvicorn workers per server (default 2)"
    )
    parser.add_argument(
        "--rate", type=int, default=5000, help="offered rate of the fixed-rate runs (default 5000)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=2,
        help="seconds of warm-up per server and endpoint (default 2)",
    )
    parser.add_argument("--skip-rss", action="store_true", help="do not measure the idle RSS")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs, database)"
    )
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        print("wrk is not installed. On Debian/Ubuntu: apt-get install -y wrk", file=sys.stderr)
        return 2

    return run_in_scratch("fedisocial-bench-", args.keep, lambda procs, tmp: run(args, procs, tmp))


def run(args: argparse.Namespace, procs: Processes, tmp: Path) -> int:
    port, bare_port = free_port(), free_port()
    env = {**os.environ, "FEDISOCIAL_CONFIG": str(tmp / "fedisocial.toml")}
    for name in list(env):  # the config file, not the caller's environment, sets the instance up
        if name.startswith("FEDISOCIAL_") and name != "FEDISOCIAL_CONFIG":
            del env[name]
    make_instance(tmp, port, env)

    log = tmp / "serve.log"
    progress(f"starting `fedisocial serve --port {port} --workers {args.workers}`")
    ours = procs.start(
        [FEDISOCIAL, "serve", "--port", str(port), "--workers", str(args.workers)],
        log=log,
        cwd=tmp,
        env=env,
    )
    wait_for(port, "/.well-known/nodeinfo", ours, log)
    progress(f"  fedisocial processes load {loaded_accelerators(process_tree(ours.pid))}")

    endpoints = [
        Endpoint("actor", "/users/alice", ACTIVITY_JSON),
        Endpoint("webfinger", f"/.well-known/webfinger?resource=acct:alice@127.0.0.1:{port}", None),
        Endpoint("nodeinfo", "/nodeinfo/2.1", None),
    ]
    progress("fetching the response bodies")
    fetch_endpoints(port, endpoints)

    manifest = write_manifest(tmp, endpoints)
    bare_log = tmp / "bare.log"
    progress(f"starting bench/bare_app.py on port {bare_port} ({args.workers} workers)")
    bare = procs.start(
        [
            sys.executable,
            str(BENCH / "bare_app.py"),
            "--manifest",
            str(manifest),
            "--port",
            str(bare_port),
            "--workers",
            str(args.workers),
        ],
        log=bare_log,
        cwd=tmp,
    )
    wait_for(bare_port, endpoints[0].path, bare, bare_log)
    check_bare(bare_port, endpoints)
    progress(f"  bare app processes load {loaded_accelerators(process_tree(bare.pid))}")

    lua = tmp / "paced.lua"
    lua.write_text(PACED_LUA, encoding="utf-8")
    paced_env = {
        "BENCH_RATE": str(args.rate),
        "BENCH_THREADS": str(args.threads),
        "BENCH_CONNECTIONS": str(args.connections),
    }
    servers = {"fedisocial": (port, ours), "bare": (bare_port, bare)}
    common = {"threads": args.threads, "connections": args.connections}

    rows = []
    half = args.duration / 2
    for ep in endpoints:
        urls = {label: f"http://127.0.0.1:{p}{ep.path}" for label, (p, _) in servers.items()}
        pids = {label: process_tree(proc.pid) for label, (_, proc) in servers.items()}
        for label in servers:
            progress(f"{ep.name} / {label}: warm-up {args.warmup:g}s")
            run_wrk(urls[label], ep.accept, duration=args.warmup, server_pids=pids[label], **common)
        # saturation in A-B-B-A halves, so a change in background load hits both servers alike
        halves: dict[str, list[WrkResult]] = {label: [] for label in servers}
        for label in ("fedisocial", "bare", "bare", "fedisocial"):
            progress(f"{ep.name} / {label}: saturation {half:g}s")
            r = run_wrk(urls[label], ep.accept, duration=half, server_pids=pids[label], **common)
            progress(
                f"  {fmt_rps(r.rps)} req/s, p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms, "
                f"other load {r.other_cores:.2f} cores"
            )
            halves[label].append(r)
        results = {label: combine(parts) for label, parts in halves.items()}
        for label in servers:
            progress(f"{ep.name} / {label}: fixed rate {args.rate:,}/s for {args.duration:g}s")
            paced = run_wrk(
                urls[label],
                ep.accept,
                duration=args.duration,
                server_pids=pids[label],
                script=lua,
                env=paced_env,
                **common,
            )
            progress(f"  achieved {fmt_rps(paced.rps)} req/s, p99 {paced.p99_ms:.2f} ms")
            results[label + " paced"] = paced
        rows.append(
            Row(
                ep,
                results["fedisocial"],
                results["bare"],
                results["fedisocial paced"],
                results["bare paced"],
            )
        )

    progress("stopping both servers")
    procs.stop(ours)
    procs.stop(bare)
    rss_mb = None if args.skip_rss else idle_rss(procs, tmp, env)
    print_report(rows, rss_mb, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
