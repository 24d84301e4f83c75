"""Fan-out: one post to 10,000 followers on 1,000 hosts, delivered by real worker processes.

For each backend (SQLite, PostgreSQL) it makes a throwaway instance, stores
10,000 remote followers spread over 1,000 loopback "hosts" (distinct
127.0.0.1 ports of one sink process) with bulk inserts, starts ``fedisocial
worker`` processes and publishes a post through the real path: ``Outbox.post``
(in this process) → ``fanout`` job → one ``deliver`` job per inbox → signed
POSTs. Two scenarios:

* ``shared``: the followers advertise a shared inbox (as Mastodon does), so the
  10,000 followers make 1,000 deliveries, one per host (the issue's case);
* ``personal``: no shared inboxes, so 10,000 deliveries, 10 per host (a longer
  run that shows the steady rate).

It reports deliveries per second from the commit of the post to the last
delivery received, the time to that last delivery, the CPU spent per delivery
by the workers and the sinks, and beside them the bound measured in the same
run: RSA-2048 signatures per second in 2 threads (signing is the one cost a
delivery cannot avoid). One delivery per scenario is checked against the
author's public key (a real draft-cavage signature with a Digest).

The sinks are a single asyncio process (uvloop when installed) listening on
all the ports with a minimal HTTP/1.1 responder (a ``Protocol`` that splits
requests by Content-Length and answers 202), so they cost little CPU; that
CPU is measured and printed anyway.

Run::

    .venv/bin/python bench/fanout.py [--database both] [--workers 2]

Prints figures and checks them against the targets; never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discovery import (
    FEDISOCIAL,
    Processes,
    cpu_seconds,
    free_port,
    machine_busy_seconds,
    process_tree,
    progress,
    run_in_scratch,
    tail,
)
from federation import DbCpu, backends, make_instance, mark, print_table, scratch_database

TARGET_RATE = 1_000
#: extra sink ports for the warm-up post (its followers' hosts are not reused by the scenarios)
WARM_HOSTS = 20
TARGET_RATIO = 0.60
HERE = Path(__file__).resolve()

# -- the sinks (run in a child process: fanout.py --sink-mode) -------------------------

_RESPONSE = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
)


class _SinkStats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.stray = 0  # not a POST to an inbox (another program that found one of our ports)
        self.unsigned = 0
        self.first = 0.0
        self.last = 0.0
        self.inboxes: set[tuple[int, bytes]] = set()
        self.sample: tuple[int, bytes, bytes] | None = None

    def record(self, port: int, head: bytes, body: bytes) -> None:
        now = time.time()
        line_end = head.find(b"\r\n")
        method, _, rest = head[:line_end].partition(b" ")
        path = rest.partition(b" ")[0]
        if method != b"POST" or not path.endswith(b"/inbox"):
            self.stray += 1
            return
        if not self.count:
            self.first = now
        self.last = now
        self.count += 1
        self.inboxes.add((port, path))
        if b"\nsignature:" not in head.lower():
            self.unsigned += 1
        if self.sample is None:
            self.sample = (port, head, body)

    def as_json(self) -> bytes:
        sample = None
        if self.sample:
            port, head, body = self.sample
            sample = {"port": port, "head": base64.b64encode(head).decode(),
                      "body": base64.b64encode(body).decode()}  # fmt: skip
        return json.dumps({
            "count": self.count, "distinct": len(self.inboxes), "unsigned": self.unsigned,
            "stray": self.stray,
            "first": self.first, "last": self.last, "sample": sample,
        }).encode()  # fmt: skip


class _SinkProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, requests split by Content-Length; answers 202 to each."""

    def __init__(self, stats: _SinkStats, port: int, control: bool) -> None:
        self.stats, self.port, self.control = stats, port, control
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            assert self.transport is not None
            if self.control:
                self.transport.write(self._control(head))
            else:
                self.stats.record(self.port, head, body)
                self.transport.write(_RESPONSE)

    def _control(self, head: bytes) -> bytes:
        if head.startswith(b"POST /reset"):
            self.stats.reset()
        payload = self.stats.as_json()
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(payload)).encode()
            + b"\r\n\r\n"
            + payload
        )


async def _serve_sinks(hosts: int, ports_file: Path) -> None:
    loop = asyncio.get_running_loop()
    stats = _SinkStats()
    servers, ports = [], []
    for _ in range(hosts):
        holder: dict[str, int] = {}
        server = await loop.create_server(
            lambda h=holder: _SinkProtocol(stats, h["port"], False), "127.0.0.1", 0, backlog=512
        )
        holder["port"] = server.sockets[0].getsockname()[1]
        servers.append(server)
        ports.append(holder["port"])
    control = await loop.create_server(lambda: _SinkProtocol(stats, 0, True), "127.0.0.1", 0)
    control_port = control.sockets[0].getsockname()[1]
    tmp = ports_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"ports": ports, "control": control_port}))
    tmp.rename(ports_file)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def sink_main(hosts: int, ports_file: Path) -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.run(_serve_sinks(hosts, ports_file))
    except ImportError:
        asyncio.run(_serve_sinks(hosts, ports_file))
    return 0


def sink_control(port: int, method: str = "GET", path: str = "/stats") -> dict[str, Any]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=b"" if method == "POST" else None)
        result: dict[str, Any] = json.loads(conn.getresponse().read())
        return result
    finally:
        conn.close()


# -- the bound -----------------------------------------------------------------------


def rsa_sign_rate(threads: int = 2, seconds: float = 2.0) -> tuple[float, float]:
    """RSA-2048 PKCS#1 v1.5 SHA-256 signatures in ``threads`` threads: per second and per
    CPU-second."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from fedisocial.ap.keys import generate_rsa_key

    key = generate_rsa_key()
    data = b"(request-target): post /inbox\nhost: example\ndate: x\ndigest: SHA-256=y"
    counts = [0] * threads
    deadline = time.monotonic() + seconds

    def work(i: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            key.sign(data, padding.PKCS1v15(), hashes.SHA256())
            n += 1
        counts[i] = n

    started, cpu = time.monotonic(), time.process_time()
    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    cpu = time.process_time() - cpu
    return sum(counts) / (time.monotonic() - started), sum(counts) / cpu if cpu else float("nan")


# -- the benchmark --------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    scenario: str
    expected: int
    delivered: int = 0
    distinct: int = 0
    unsigned: int = 0
    first_s: float = float("nan")  # commit of the post -> first delivery
    last_s: float = float("nan")  # commit of the post -> last delivery
    jobs_done_s: float = float("nan")  # commit -> every deliver job finished
    worker_cpu_s: float = 0.0
    sink_cpu_s: float = 0.0
    db_cpu_s: float = 0.0  # the PostgreSQL server's processes (all of them)
    other_cpu_s: float = 0.0
    elapsed_s: float = 0.0
    failed_jobs: int = 0
    signature: str = "not checked"
    bound: float = float("nan")  # RSA-2048 signatures/s in 2 threads, same run
    bound_cpu: float = float("nan")  # RSA-2048 signatures per CPU-second
    stray: int = 0

    @property
    def per_cpu_second(self) -> float:
        """Deliveries per CPU-second of the workers, the sinks and the database server."""
        cpu = self.worker_cpu_s + self.sink_cpu_s + self.db_cpu_s
        return self.delivered / cpu if cpu else float("nan")

    @property
    def rate(self) -> float:
        return self.distinct / self.last_s if self.last_s > 0 else 0.0

    @property
    def steady_rate(self) -> float:
        span = self.last_s - self.first_s
        return (self.delivered - 1) / span if span > 0 else float("nan")


async def _add_followers(
    database_url: str, base_url: str, ports: list[int], warm_ports: list[int], per_host: int
) -> None:
    """alice's followers advertise shared inboxes, bob's do not, carol's (the warm-up) neither."""
    from sqlalchemy import insert

    from fedisocial.store.db import Database
    from fedisocial.store.models import Actor, Follow, utcnow

    db = Database(database_url)
    now = utcnow()
    try:
        sets = (("alice", "s", True, ports), ("bob", "p", False, ports),
                ("carol", "w", False, warm_ports))  # fmt: skip
        for followee, prefix, shared, on in sets:
            actors, follows = [], []
            for port in on:
                host = f"127.0.0.1:{port}"
                for k in range(per_host):
                    uri = f"http://{host}/users/{prefix}{k}"
                    actors.append({
                        "uri": uri, "type": "Person", "username": f"{prefix}{k}", "domain": host,
                        "local": False, "name": "", "summary": "", "inbox": f"{uri}/inbox",
                        "shared_inbox": f"http://{host}/inbox" if shared else None,
                        "followers_url": f"{uri}/followers", "public_key_id": f"{uri}#main-key",
                        "public_key_pem": "unused", "fetched_at": now,
                    })  # fmt: skip
                    follows.append({
                        "follower_uri": uri, "followee_uri": f"{base_url}/users/{followee}",
                        "activity_uri": f"{uri}/follows/{followee}", "state": "accepted",
                        "accepted_at": now,
                    })  # fmt: skip
            for table, rows in ((Actor, actors), (Follow, follows)):
                for i in range(0, len(rows), 5000):
                    async with db.transaction() as session:
                        await session.execute(insert(table), rows[i : i + 5000])
    finally:
        await db.close()


def _verify_sample(sample: dict[str, Any] | None, public_key_pem: str) -> str:
    from fedisocial.ap import httpsig
    from fedisocial.errors import SignatureError
    from fedisocial.store.models import utcnow

    if not sample:
        return "no sample"
    head = base64.b64decode(sample["head"]).decode("latin-1")
    body = base64.b64decode(sample["body"])
    request_line, *lines = head.split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    url = f"http://127.0.0.1:{sample['port']}{path}"
    try:
        parsed = httpsig.verify_request(
            method, url, headers, body, httpsig.load_public_key(public_key_pem), now=utcnow()
        )
    except SignatureError as exc:
        return f"INVALID: {exc}"
    return f"valid ({parsed.scheme}, {'digest' if parsed.digest else 'no digest'})"


async def _run_scenario(
    result: Result,
    settings_path: Path,
    user: str,
    control: int,
    worker_pids: list[int],
    sink_pids: list[int],
    db_cpu: DbCpu,
    limit_s: float,
) -> None:
    from sqlalchemy import func, select

    from fedisocial.app import build_context
    from fedisocial.config import load_settings
    from fedisocial.social.accounts import find_local_actor
    from fedisocial.store.models import Job

    context = await build_context(load_settings(settings_path))
    try:
        actor = await find_local_actor(context.db, context.urls, user)
        sink_control(control, "POST", "/reset")
        cpu_before = cpu_seconds(worker_pids), cpu_seconds(sink_pids)
        db_cpu.begin()
        busy_before, self_before = machine_busy_seconds(), time.process_time()
        started = time.monotonic()
        await context.outbox.post(actor, f"Hello, {result.expected:,} inboxes!")
        committed = time.time()
        stats = sink_control(control)
        last_progress, last_count = time.monotonic(), 0
        while stats["distinct"] < result.expected and time.monotonic() - started < limit_s:
            await asyncio.sleep(0.05)
            stats = sink_control(control)
            if stats["count"] != last_count:
                last_progress, last_count = time.monotonic(), stats["count"]
            elif time.monotonic() - last_progress > 15:
                progress(f"  no progress for 15 s at {stats['distinct']:,} deliveries; giving up")
                break
        # every deliver job finished (a worker may record its finishes a little later)
        unfinished = select(func.count()).where(Job.kind.in_(("fanout", "deliver")),
                                                Job.status.in_(("queued", "running")))  # fmt: skip
        jobs_done = float("nan")
        while time.monotonic() - started < limit_s + 10:
            async with context.db.session() as session:
                if not await session.scalar(unfinished):
                    jobs_done = time.time() - committed
                    break
            await asyncio.sleep(0.05)
        result.elapsed_s = time.monotonic() - started
        result.worker_cpu_s = cpu_seconds(worker_pids) - cpu_before[0]
        result.sink_cpu_s = cpu_seconds(sink_pids) - cpu_before[1]
        result.db_cpu_s = db_cpu.seconds()
        busy = machine_busy_seconds() - busy_before
        own = time.process_time() - self_before
        ours = result.worker_cpu_s + result.sink_cpu_s + result.db_cpu_s + own
        result.other_cpu_s = max(0.0, busy - ours)
        async with context.db.session() as session:
            result.failed_jobs = int(await session.scalar(
                select(func.count()).where(Job.kind == "deliver", Job.status == "failed")
            ) or 0)  # fmt: skip
        result.delivered, result.distinct = stats["count"], stats["distinct"]
        result.unsigned, result.stray = stats["unsigned"], stats["stray"]
        if stats["count"]:
            result.first_s, result.last_s = stats["first"] - committed, stats["last"] - committed
        result.jobs_done_s = jobs_done
        result.signature = _verify_sample(stats["sample"], actor.public_key_pem)
    finally:
        await context.client.aclose()
        await context.db.close()


def run_backend(
    backend: str, args: argparse.Namespace, procs: Processes, tmp: Path
) -> list[Result]:
    results: list[Result] = []
    with scratch_database(backend, tmp, "fanout") as database_url:
        root = tmp / backend
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        progress(f"[{backend}] creating the instance (alice, bob, carol) in {root}")
        env = make_instance(root, base_url, database_url, ["alice", "bob", "carol"])

        ports_file = root / "sink-ports.json"
        sink_log = root / "sinks.log"
        progress(f"[{backend}] starting the sink process: {args.hosts:,} listening ports")
        sink = procs.start(
            [sys.executable, str(HERE), "--sink-mode", "--hosts", str(args.hosts + WARM_HOSTS),
             "--ports-file", str(ports_file)],
            log=sink_log,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not ports_file.exists():
            if sink.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the sinks did not start:\n{tail(sink_log)}")
            time.sleep(0.1)
        sinks = json.loads(ports_file.read_text())
        ports, warm_ports = sinks["ports"][: args.hosts], sinks["ports"][args.hosts :]
        per_host = args.followers // args.hosts
        progress(
            f"[{backend}] storing {2 * per_host * args.hosts:,} remote actors and follows "
            f"({per_host} per host; alice's with shared inboxes, bob's without)"
        )
        started = time.monotonic()
        asyncio.run(_add_followers(database_url, base_url, ports, warm_ports, per_host))
        progress(f"  done in {time.monotonic() - started:.1f}s")

        progress(f"[{backend}] bound: RSA-2048 signatures/s in 2 threads ({args.bound_seconds:g}s)")
        bound, bound_cpu = rsa_sign_rate(2, args.bound_seconds)
        progress(f"  {bound:,.0f} signatures/s, {bound_cpu:,.0f} per CPU-second")

        workers = []
        for i in range(args.workers):
            log = root / f"worker{i}.log"
            workers.append((procs.start(
                [FEDISOCIAL, "worker", "--concurrency", str(args.concurrency)],
                log=log, cwd=root, env=env,
            ), log))  # fmt: skip
        for proc, log in workers:
            deadline = time.monotonic() + 60
            while "running" not in tail(log, 5):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"a worker did not start:\n{tail(log)}")
                time.sleep(0.1)
        worker_pids = [pid for proc, _ in workers for pid in process_tree(proc.pid)]
        progress(
            f"[{backend}] {args.workers} `fedisocial worker --concurrency {args.concurrency}` "
            "processes running"
        )
        scenarios = [
            ("warm-up", "carol", WARM_HOSTS * per_host),
            ("shared", "alice", args.hosts),
            ("personal", "bob", per_host * args.hosts),
        ]
        db_cpu = DbCpu(database_url.rsplit("/", 1)[1] if backend == "postgresql" else None)
        for name, user, expected in scenarios:
            if name != "warm-up" and args.scenario not in ("both", name):
                continue
            result = Result(backend, name, expected, bound=bound, bound_cpu=bound_cpu)
            progress(f"[{backend}] {name}: {user} posts; expecting {expected:,} deliveries")
            asyncio.run(_run_scenario(
                result, root / "fedisocial.toml", user, sinks["control"], worker_pids,
                process_tree(sink.pid), db_cpu, limit_s=max(60.0, expected / 100),
            ))  # fmt: skip
            progress(
                f"  {result.distinct:,}/{expected:,} inboxes, last after {result.last_s:.2f}s "
                f"({result.rate:,.0f}/s), jobs done after {result.jobs_done_s:.2f}s, "
                f"worker CPU {1000 * result.worker_cpu_s / max(result.delivered, 1):.2f} ms "
                f"per delivery"
            )
            if name != "warm-up":
                results.append(result)
            time.sleep(1)
        for proc, _ in workers:
            procs.stop(proc)
        procs.stop(sink)
    return results


def print_report(results: list[Result], args: argparse.Namespace) -> None:
    print()
    print(
        f"Fan-out: one post, {args.followers:,} followers on {args.hosts:,} loopback hosts, "
        f"{args.workers} `fedisocial worker` processes (concurrency {args.concurrency}), "
        f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}"
    )
    print(
        f"Targets: ≥ {TARGET_RATE:,} signed deliveries/s and ≥ {TARGET_RATIO:.0%} of the "
        "RSA-2048 signing bound (2 threads), measured in the same run"
    )
    print()
    header = ("backend", "scenario", "inboxes", "deliveries/s", "of bound", "last at",
              "first at", "steady/s", "jobs done", "CPU ms/delivery worker | sink | db",
              "per CPU-s: deliveries | signatures")  # fmt: skip
    rows = []
    for r in results:
        bound = r.bound
        ratio = r.rate / bound if bound else 0.0
        per = max(r.delivered, 1)
        rows.append((
            r.backend, r.scenario, f"{r.distinct:,}/{r.expected:,}",
            f"{r.rate:,.0f} {mark(r.rate >= TARGET_RATE and r.distinct == r.expected)}",
            f"{ratio:.0%} of {bound:,.0f} {mark(ratio >= TARGET_RATIO)}",
            f"{r.last_s:.2f}s", f"{r.first_s:.2f}s", f"{r.steady_rate:,.0f}",
            f"{r.jobs_done_s:.2f}s",
            f"{1000 * r.worker_cpu_s / per:.2f} | {1000 * r.sink_cpu_s / per:.2f} | "
            f"{1000 * r.db_cpu_s / per:.2f}",
            f"{r.per_cpu_second:,.0f} | {r.bound_cpu:,.0f}",
        ))  # fmt: skip
    print_table(header, rows)
    print()
    for r in results:
        notes = [f"signature of a sampled delivery: {r.signature}"]
        if r.delivered != r.distinct:
            notes.append(f"{r.delivered - r.distinct} repeated deliveries")
        if r.unsigned:
            notes.append(f"{r.unsigned} UNSIGNED requests")
        if r.stray:
            notes.append(f"{r.stray} stray requests to the sinks (not inbox POSTs; ignored)")
        if r.failed_jobs:
            notes.append(f"{r.failed_jobs} failed deliver jobs")
        other = r.other_cpu_s / r.elapsed_s if r.elapsed_s else 0.0
        notes.append(f"other load {other:.2f} cores")
        print(f"  {r.backend}/{r.scenario}: " + "; ".join(notes))
    print()
    print(
        "deliveries/s = distinct inboxes reached / (last delivery - commit of the post); "
        "steady/s = between\nthe first and the last delivery; first at includes the workers' "
        "poll of the queue. The sinks, this\nscript and the workers share the same cores; "
        "'per CPU-s' (deliveries per CPU-second of workers + sinks + db,\nRSA signatures per "
        "CPU-second of the bound) is insensitive to the load of other processes."
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Fan-out of one post to many followers on many loopback hosts, by real "
        "`fedisocial worker` processes, beside the RSA-2048 signing bound. Prints figures; "
        "never asserts."
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both",
                        help="backend(s) to measure (default both)")  # fmt: skip
    parser.add_argument("--followers", type=int, default=10_000,
                        help="followers per post (default 10000)")  # fmt: skip
    parser.add_argument("--hosts", type=int, default=1_000,
                        help="loopback hosts (ports) they live on (default 1000)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2,
                        help="`fedisocial worker` processes (default 2)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=32,
                        help="jobs each worker runs at once (default 32, as the CLI)")  # fmt: skip
    parser.add_argument("--scenario", choices=("shared", "personal", "both"), default="both",
                        help="shared inboxes (1 delivery per host), personal, or both")  # fmt: skip
    parser.add_argument("--bound-seconds", type=float, default=3.0,
                        help="seconds of the RSA signing measurement (default 3)")  # fmt: skip
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (logs, SQLite files)")  # fmt: skip
    parser.add_argument("--sink-mode", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ports-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink_mode:
        return sink_main(args.hosts, args.ports_file)

    def body(procs: Processes, tmp: Path) -> int:
        results: list[Result] = []
        for backend in backends(args.database):
            results += run_backend(backend, args, procs, tmp)
        print_report(results, args)
        return 0

    return run_in_scratch("fedisocial-fanout-", args.keep, body)


if __name__ == "__main__":
    sys.exit(main())
