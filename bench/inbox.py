"""Inbox ingest: signed Create{Note} deliveries from many remote actors, accepted and processed.

For each backend (SQLite, PostgreSQL) it makes a throwaway instance whose
``alice`` follows 1,000 remote actors (on 100 remote hosts), stored beforehand
with their public keys so that no key is fetched, and runs ``fedisocial serve
--workers 2`` (two web processes and the job worker process beside them). It
signs unique ``Create{Note}`` activities ahead of time, the way Mastodon
delivers them (draft-cavage over ``(request-target) host date digest``; the
12-hour Date window allows it), and replays them with ``wrk`` (a Lua script
cycles through the pre-built requests, each thread its own share, none sent
twice) against the shared inbox:

* accepted/s at saturation (202 = verified, stored and its processing job
  committed) and its p50/p99;
* processed/s: ``process_activity`` jobs finished per second, from the first
  job queued to the last one done (the Note stored, alice's timeline entry
  written), and the rate of draining the backlog once the load stops;
* the achieved rate and p99 of accepts at a fixed 1,000 requests/s;
* beside them, in the same run, a bare Starlette app (``--bare-mode``, same
  uvicorn settings, 2 workers) that only parses the signature, checks the
  Digest and verifies the RSA signature of the same requests: the bound.

It checks afterwards that every accepted activity got exactly one job, and
prints the CPU per request of the servers (and of PostgreSQL's backends).

Run::

    .venv/bin/python bench/inbox.py [--database both] [--duration 10]

Needs ``wrk``. Prints figures and checks them against the targets; never
asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from discovery import (
    FEDISOCIAL,
    PACED_LUA,
    Processes,
    WrkResult,
    cpu_seconds,
    free_port,
    loaded_accelerators,
    process_tree,
    progress,
    run_in_scratch,
    run_wrk,
    wait_for,
)
from federation import (
    DbCpu,
    analyze_as_autovacuum_would,
    backends,
    make_instance,
    mark,
    print_table,
    scratch_database,
)

#: the issue's targets per mode: accepted/s, share of the bare app, processed/s
TARGETS = {"default": (1_500, 0.25, 1_000), "split": (3_000, 0.40, 1_500)}
#: p99 of accepts at the fixed rate, per backend
TARGET_P99_MS = {"sqlite": 100.0, "postgresql": 50.0}
HERE = Path(__file__).resolve()
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
KEYS_ENV = "BENCH_INBOX_KEYS"

# Each wrk thread reads its own file of pre-built requests ("LENGTH\n" + raw bytes,
# repeated) and sends each once, in order; past the end it starts again (counted).
REPLAY_LUA = r"""
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

requests = {}
sent = 0
wrapped = 0
available = 0

function init(args)
  local f = assert(io.open(os.getenv("BENCH_REQUESTS") .. "." .. tid, "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  while pos <= #data do
    local nl = string.find(data, "\n", pos, true)
    local len = tonumber(string.sub(data, pos, nl - 1))
    requests[#requests + 1] = string.sub(data, nl + 1, nl + len)
    pos = nl + len + 1
  end
  available = #requests
end

function request()
  sent = sent + 1
  if sent > #requests then
    sent = 1
    wrapped = wrapped + 1
  end
  return requests[sent]
end

function done(summary, latency, reqs)
  for _, t in ipairs(threads) do
    io.write(string.format("BENCH_REPLAY %d %d %d\n", t:get("sent"), t:get("wrapped"),
                           t:get("available")))
  end
end
"""


# -- the bare bound (run as: inbox.py --bare-mode) ------------------------------------


def create_bare_app() -> Any:
    """Starlette, one route: parse the signature, check the Digest, verify RSA; 202."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from fedisocial.ap import httpsig
    from fedisocial.errors import SignatureError

    keys = {
        key_id: httpsig.load_public_key(pem)
        for key_id, pem in json.loads(Path(os.environ[KEYS_ENV]).read_text()).items()
    }

    async def inbox(request: Request) -> Response:
        body = await request.body()
        url = f"http://{request.headers['host']}{request.url.path}"
        try:
            parsed = httpsig.parse_signature(request.method, url, request.headers)
            httpsig.verify_signature(parsed, keys[parsed.key_id], body, now=datetime.now(UTC))
        except (SignatureError, KeyError) as exc:
            return Response(str(exc), status_code=401)
        return Response(b"{}", status_code=202, media_type="application/json")

    async def health(request: Request) -> Response:
        return Response(b"ok")

    return Starlette(routes=[Route("/inbox", inbox, methods=["POST"]), Route("/health", health)])


def bare_main(port: int, workers: int, keys_file: Path) -> int:
    import uvicorn

    os.environ[KEYS_ENV] = str(keys_file)
    uvicorn.run(
        "inbox:create_bare_app", factory=True, app_dir=str(HERE.parent), host="127.0.0.1",
        port=port, workers=workers, log_level="warning", proxy_headers=True,
        server_header=False, access_log=False,
    )  # fmt: skip
    return 0


# -- the senders and their requests -----------------------------------------------------


@dataclass
class Senders:
    """Remote actors (uri, key id, index of their key) and the keys' PEMs."""

    actors: list[tuple[str, str, int]]
    private_pems: list[str]
    public_pems: list[str]


def make_senders(count: int, keys: int, hosts: int) -> Senders:
    from fedisocial.ap import httpsig

    private, public = [], []
    for _ in range(keys):
        key = httpsig.generate_rsa_key()
        private.append(httpsig.private_key_to_pem(key))
        public.append(httpsig.public_key_to_pem(key))
    actors = []
    for n in range(count):
        uri = f"https://remote{n % hosts}.example/users/u{n}"
        actors.append((uri, f"{uri}#main-key", n % keys))
    return Senders(actors, private, public)


async def store_senders(database_url: str, base_url: str, senders: Senders) -> None:
    """The remote actors with their keys, and alice following each of them (bulk inserts)."""
    from sqlalchemy import insert

    from fedisocial.store.db import Database
    from fedisocial.store.models import Actor, Follow, utcnow

    db = Database(database_url)
    now = utcnow()
    actors: list[dict[str, Any]] = []
    follows: list[dict[str, Any]] = []
    for uri, key_id, key in senders.actors:
        host = uri.split("/")[2]
        actors.append({
            "uri": uri, "type": "Person", "username": uri.rsplit("/", 1)[1], "domain": host,
            "local": False, "name": "", "summary": "", "inbox": f"{uri}/inbox",
            "shared_inbox": f"https://{host}/inbox", "followers_url": f"{uri}/followers",
            "public_key_id": key_id, "public_key_pem": senders.public_pems[key],
            "fetched_at": now,
        })  # fmt: skip
        follows.append({
            "follower_uri": f"{base_url}/users/alice", "followee_uri": uri,
            "activity_uri": f"{base_url}/users/alice/follows/{len(follows)}",
            "state": "accepted", "accepted_at": now,
        })  # fmt: skip
    try:
        async with db.transaction() as session:
            await session.execute(insert(Actor), actors)
            await session.execute(insert(Follow), follows)
    finally:
        await db.close()


_KEYS: dict[str, Any] = {}


#: the mixed load, per 50 deliveries: mostly Create and Like, as a busy Mastodon instance
#: receives them; Likes, boosts, edits and deletes are of the warm-up run's posts
MIX = (("Create", 25), ("Like", 15), ("Announce", 5), ("Update", 2), ("Delete", 2), ("Follow", 1))
_MIX_CYCLE = [kind for kind, share in MIX for _ in range(share)]


def _kind_of(load: str, n: int) -> str:
    return _MIX_CYCLE[(n * 7) % len(_MIX_CYCLE)] if load == "mixed" else "Create"


def _note(note_id: str, actor: str, iso: str, n: int, in_reply_to: str | None) -> dict[str, Any]:
    return {
        "id": note_id, "type": "Note", "attributedTo": actor, "published": iso,
        "content": f"<p>Benchmark post {n} from {actor}: a sunset over the harbor, "
                   "painted in watercolor by an image model. #AIGenerated</p>",
        "to": [PUBLIC], "cc": [f"{actor}/followers"], "url": note_id, "inReplyTo": in_reply_to,
        "summary": None, "sensitive": False, "tag": [], "attachment": [],
    }  # fmt: skip


def _activity(
    kind: str, actor: str, n: int, label: str, iso: str, target: str | None,
    in_reply_to: str | None, base_url: str,
) -> dict[str, Any]:  # fmt: skip
    """Activity ``n`` of a run: ``target`` is a post of the warm-up run (Like, Announce…)."""
    common = {"@context": "https://www.w3.org/ns/activitystreams", "actor": actor,
              "published": iso, "to": [PUBLIC], "cc": [f"{actor}/followers"]}  # fmt: skip
    own = f"{actor}/statuses/{label}{n}"
    if kind == "Create":
        return {**common, "id": f"{own}/activity", "type": "Create",
                "object": _note(own, actor, iso, n, in_reply_to)}  # fmt: skip
    if kind == "Follow":
        return {**common, "id": f"{actor}/follows/{label}{n}", "type": "Follow",
                "object": f"{base_url}/users/alice"}  # fmt: skip
    assert target is not None
    if kind == "Update":
        edited = {**_note(target, actor, iso, n, None), "updated": iso}
        return {**common, "id": f"{target}#update-{label}{n}", "type": "Update", "object": edited}
    if kind == "Delete":
        return {**common, "id": f"{target}#delete-{label}{n}", "type": "Delete", "object": target}
    return {**common, "id": f"{actor}/{kind.lower()}s/{label}{n}", "type": kind, "object": target}


_KEYS: dict[str, Any] = {}


def _sign_chunk(
    args: tuple[str, list[tuple[str, str, str, str | None, str]], int, str, str, str | None],
) -> list[bytes]:
    """Raw HTTP requests for (actor, key id, kind, target, pem) specs, numbered from ``first``."""
    from fedisocial.ap import httpsig

    base_url, specs, first, label, _load, in_reply_to = args
    for pem in {spec[4] for spec in specs} - set(_KEYS):
        _KEYS[pem] = httpsig.load_private_key(pem)  # 27 ms each: once per process
    keys = _KEYS
    host = base_url.split("://", 1)[1]
    now = datetime.now(UTC)
    iso = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = []
    for offset, (actor, key_id, kind, target, pem) in enumerate(specs):
        activity = _activity(kind, actor, first + offset, label, iso, target, in_reply_to,
                             base_url)  # fmt: skip
        body = json.dumps(activity, separators=(",", ":")).encode()
        headers = {"Host": host, "Content-Type": "application/activity+json"}
        added = httpsig.sign_request(
            "POST", f"{base_url}/inbox", headers, body, key_id, keys[pem], now=now
        )
        lines = [
            "POST /inbox HTTP/1.1", f"Host: {added['Host']}",
            "Content-Type: application/activity+json", f"Content-Length: {len(body)}",
            f"Date: {added['Date']}", f"Digest: {added['Digest']}",
            f"Signature: {added['Signature']}",
        ]  # fmt: skip
        out.append(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return out


def write_requests(
    path: Path, base_url: str, senders: Senders, count: int, label: str, threads: int,
    pool: concurrent.futures.ProcessPoolExecutor, *, load: str = "create",
    targets_label: str | None = None, in_reply_to: str | None = None,
) -> None:  # fmt: skip
    """``count`` unique signed requests split over ``threads`` files (PATH.0, PATH.1, ...).

    ``load`` "mixed": the :data:`MIX` of kinds, whose targets are the posts of the run
    ``targets_label`` (edits and deletes by their authors); ``in_reply_to``: every Create
    replies to that post (a reply storm).
    """
    actors = senders.actors
    specs = []
    for n in range(count):
        kind, sender, target = _kind_of(load, n), actors[n % len(actors)], None
        if kind not in ("Create", "Follow"):
            assert targets_label is not None, "a mixed load needs a run whose posts it targets"
            w = (n * 13) % 2_000  # a post of the warm-up run (it has 2,000)
            author = actors[w % len(actors)]
            target = f"{author[0]}/statuses/{targets_label}{w}"
            if kind in ("Update", "Delete"):
                sender = author
        specs.append((sender[0], sender[1], kind, target, senders.private_pems[sender[2]]))
    step = 2_000
    chunks = [(base_url, specs[i : i + step], i, label, load, in_reply_to)
              for i in range(0, count, step)]  # fmt: skip
    files = [open(f"{path}.{t}", "wb") for t in range(threads)]  # noqa: SIM115
    try:
        n = 0
        for requests in pool.map(_sign_chunk, chunks):
            for raw in requests:
                files[n % threads].write(b"%d\n" % len(raw) + raw)
                n += 1
    finally:
        for f in files:
            f.close()


# -- measuring ----------------------------------------------------------------------


@dataclass
class Replay:
    wrk: WrkResult
    sent: int = 0
    wrapped: int = 0
    available: int = 0


def replay(
    url: str, requests: Path, *, threads: int, connections: int, duration: float,
    server_pids: list[int], lua: Path, rate: int | None = None,
) -> Replay:  # fmt: skip
    env = {"BENCH_REQUESTS": str(requests)}
    if rate:
        env.update(BENCH_RATE=str(rate), BENCH_THREADS=str(threads),
                   BENCH_CONNECTIONS=str(connections))  # fmt: skip
    result = run_wrk(url, None, threads=threads, connections=connections, duration=duration,
                     server_pids=server_pids, script=lua, env=env)  # fmt: skip
    out = Replay(result)
    for line in result.raw.splitlines():
        if line.startswith("BENCH_REPLAY"):
            _, sent, wrapped, available = line.split()
            out.wrapped += int(wrapped)
            out.sent += int(sent) + int(wrapped) * int(available)
            out.available += int(available)
    return out


@dataclass
class Processing:
    jobs: int = 0
    done: int = 0
    failed: int = 0
    first_queued: datetime | None = None
    last_done: datetime | None = None
    notes: int = 0
    feed_entries: int = 0

    @property
    def rate(self) -> float:
        if not (self.first_queued and self.last_done):
            return 0.0
        span = (self.last_done - self.first_queued).total_seconds()
        return self.done / span if span > 0 else 0.0


async def _processing(database_url: str, since: datetime) -> Processing:
    from sqlalchemy import func, select

    from fedisocial.store.db import Database
    from fedisocial.store.models import Job, Object, TimelineEntry

    db = Database(database_url)
    try:
        async with db.session() as session:
            rows = await session.execute(
                select(Job.status, func.count(), func.min(Job.created_at),
                       func.max(Job.finished_at))
                .where(Job.kind == "process_activity", Job.created_at >= since)
                .group_by(Job.status)
            )  # fmt: skip
            out = Processing()
            for status, count, first, last in rows:
                out.jobs += count
                out.first_queued = min(filter(None, (out.first_queued, first)), default=None)
                if status == "done":
                    out.done, out.last_done = count, last
                elif status == "failed":
                    out.failed = count
            out.notes = int(await session.scalar(
                select(func.count()).select_from(Object)
                .where(Object.type == "Note", Object.local.is_(False), Object.created_at >= since)
            ) or 0)  # fmt: skip
            out.feed_entries = int(await session.scalar(
                select(func.count()).select_from(TimelineEntry)
                .join(Object, Object.id == TimelineEntry.object_id)
                .where(Object.created_at >= since)
            ) or 0)  # fmt: skip
            return out
    finally:
        await db.close()


async def _scalar(database_url: str, query: Any) -> Any:
    """One value read from the instance's database (its own engine, closed after)."""
    from fedisocial.store.db import Database

    db = Database(database_url)
    try:
        async with db.session() as session:
            return await session.scalar(query)
    finally:
        await db.close()


async def _accepted(database_url: str, label: str) -> int:
    """How many Create activities of the run ``label`` the inbox accepted."""
    from sqlalchemy import func, select

    from fedisocial.store.models import Object

    return int(await _scalar(database_url, select(func.count()).where(
        Object.type == "Create", Object.uri.like(f"%/statuses/{label}%/activity")
    )) or 0)  # fmt: skip


async def _unfinished(database_url: str) -> int:
    from sqlalchemy import and_, func, select

    from fedisocial.store.models import Job, utcnow

    # received activities only: the Accepts that Follows send go to hosts that do not exist
    # and are retried for days; and not those waiting for a retry (a mixed load boosts posts
    # its Deletes removed: fetching them from hosts that do not exist fails, and is retried)
    later = and_(Job.status == "queued", Job.attempts > 0, Job.run_at > utcnow())
    return int(await _scalar(database_url, select(func.count()).where(
        Job.status.in_(("queued", "running")), Job.kind == "process_activity", ~later
    )) or 0)  # fmt: skip


def drain(database_url: str, limit_s: float) -> float:
    """Wait until no received activity waits to be processed; seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if not asyncio.run(_unfinished(database_url)):
            break
        time.sleep(0.2)
    return time.monotonic() - started


@dataclass
class Storm:
    """Other senders' accepts, alone and during a reply storm to one post (paced, both)."""

    alone: WrkResult
    during: WrkResult
    storm: WrkResult
    replies: int = 0
    processed_s: float = 0.0


def run_storm(
    backend: str, args: argparse.Namespace, base_url: str, pids: list[int],
    files: dict[str, Path], database_url: str, post: str,
) -> Storm:  # fmt: skip
    """Others at half the rate alone, then with the storm at the other half, together."""
    half = args.rate // 2
    seconds = args.storm / half
    common = {"threads": 1, "connections": args.connections // 2, "server_pids": pids,
              "rate": half, "lua": files["paced-lua"], "duration": seconds}  # fmt: skip
    progress(f"[{backend}/storm] other senders alone at {half:,}/s for {seconds:g}s")
    alone = replay(f"{base_url}/inbox", files["storm-alone"], **common).wrk
    drain(database_url, 300)
    progress(f"[{backend}/storm] {args.storm:,} replies to {post} at {half:,}/s, beside others")
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(2) as threads:
        during = threads.submit(replay, f"{base_url}/inbox", files["storm-others"], **common)
        storm = threads.submit(replay, f"{base_url}/inbox", files["storm"], **common)
        result = Storm(alone, during.result().wrk, storm.result().wrk)
    drain(database_url, 600)
    result.processed_s = time.monotonic() - started
    result.replies = asyncio.run(_replies(database_url, post))
    progress(f"  others' p99 {result.alone.p99_ms:.1f} ms alone, {result.during.p99_ms:.1f} ms "
             f"during the storm; {result.replies:,} replies stored, all processed "
             f"{result.processed_s:.1f}s after the storm began")  # fmt: skip
    return result


async def _replies(database_url: str, post: str) -> int:
    from sqlalchemy import func, select

    from fedisocial.store.models import Object

    query = select(func.count()).select_from(Object).where(Object.in_reply_to == post)
    return int(await _scalar(database_url, query) or 0)


async def _local_post(database_url: str) -> str:
    from sqlalchemy import select

    from fedisocial.store.models import Object

    query = select(Object.uri).where(Object.local.is_(True), Object.type == "Note")
    uri = await _scalar(database_url, query)
    assert isinstance(uri, str), "alice's post is stored"
    return uri


@dataclass
class ModeResult:
    """One way of running the instance: workers inside the web processes, or apart."""

    mode: str
    ours: Replay | None = None
    paced: Replay | None = None
    processing: Processing = field(default_factory=Processing)
    drain_s: float = 0.0
    drain_done: int = 0
    server_cpu_s: float = 0.0  # web processes (and workers) from saturation to drained
    db_cpu_s: float = 0.0
    storm: Storm | None = None

    @property
    def drain_rate(self) -> float:
        return self.drain_done / self.drain_s if self.drain_s else 0.0


@dataclass
class Result:
    backend: str
    bare: Replay | None = None
    modes: list[ModeResult] = field(default_factory=list)


MODES = {
    "default": "serve --workers 2 (two web processes and the job worker process serve starts)",
    "split": "serve --workers 2 --no-worker, then `fedisocial worker` processes",
}


def run_mode(
    mode: str, backend: str, args: argparse.Namespace, procs: Processes, root: Path,
    env: dict[str, str], database_url: str, files: dict[str, Path],
) -> ModeResult:  # fmt: skip
    out = ModeResult(mode)
    if mode == "split":  # the backlog grows on purpose (no worker until the end): no 503s
        env = {**env, "FEDISOCIAL_INBOX_MAX_BACKLOG": "0"}
    port = int(env["BENCH_PORT"])
    base_url = f"http://127.0.0.1:{port}"
    argv = [FEDISOCIAL, "serve", "--port", str(port), "--workers", "2"]
    if mode == "split":
        argv.append("--no-worker")
    progress(f"[{backend}/{mode}] starting `fedisocial {' '.join(argv[1:])}`")
    log = root / f"serve-{mode}.log"
    ours = procs.start(argv, log=log, cwd=root, env=env)
    wait_for(port, "/.well-known/nodeinfo", ours, log)
    progress(f"  fedisocial processes load {loaded_accelerators(process_tree(ours.pid))}")
    pids = process_tree(ours.pid)
    lua, paced_lua = files["lua"], files["paced-lua"]
    common = {"threads": args.threads, "connections": args.connections}
    database = database_url.rsplit("/", 1)[1] if backend == "postgresql" else None

    def run_workers() -> list[int]:
        """Start the `fedisocial worker` processes of split mode; their pids."""
        started = []
        for i in range(args.split_workers):
            wlog = root / f"worker-{mode}-{i}.log"
            started.append(procs.start([FEDISOCIAL, "worker"], log=wlog, cwd=root, env=env))
        return [pid for proc in started for pid in process_tree(proc.pid)]

    progress(f"[{backend}/{mode}] warm-up 2 s")
    for _ in range(6):
        warm = replay(f"{base_url}/inbox", files[f"warm-{mode}"], duration=2, server_pids=pids,
                      lua=lua, **common)  # fmt: skip
        if args.load != "mixed":
            break
        # a mixed load likes, boosts, edits and deletes posts of the warm-up: all of them
        # are delivered first (sent again from the start: the ones accepted are duplicates)
        delivered = asyncio.run(_accepted(database_url, f"warm-{mode}"))
        if delivered >= warm.available:
            break
        progress(f"  {delivered:,} of {warm.available:,} warm-up posts accepted: 2 s more")
    else:
        raise SystemExit(f"the warm-up delivered {delivered:,} of {warm.available:,} posts")
    if mode == "split":
        worker_pids = run_workers()
        drain(database_url, 120)
        for pid in worker_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    drain(database_url, 120)
    analyze_as_autovacuum_would(database_url)
    db_cpu = DbCpu(database)

    progress(f"[{backend}/{mode}] saturation {args.duration:g}s")
    since = datetime.now(UTC)
    cpu_before = cpu_seconds(pids)
    db_cpu.begin()
    out.ours = replay(f"{base_url}/inbox", files[f"saturation-{mode}"], duration=args.duration,
                      server_pids=pids, lua=lua, **common)  # fmt: skip
    progress(f"  {out.ours.wrk.ok_rps:,.0f} accepted/s, p99 {out.ours.wrk.p99_ms:.1f} ms")
    if mode == "default":
        progress("  draining the backlog")
        mid = asyncio.run(_processing(database_url, since))
        out.drain_s = drain(database_url, 600)
        out.processing = asyncio.run(_processing(database_url, since))
        out.drain_done = out.processing.done - mid.done
        out.server_cpu_s = cpu_seconds(pids) - cpu_before
        out.db_cpu_s = db_cpu.seconds()
        progress(
            f"  processed {out.processing.done:,} at {out.processing.rate:,.0f}/s; "
            f"{out.drain_done:,} after the load stopped, in {out.drain_s:.1f}s"
        )
    progress(f"[{backend}/{mode}] fixed rate {args.rate:,}/s for {args.duration:g}s")
    out.paced = replay(
        f"{base_url}/inbox", files[f"paced-{mode}"], duration=args.duration, server_pids=pids,
        rate=args.rate, lua=paced_lua, **common,
    )  # fmt: skip
    progress(f"  achieved {out.paced.wrk.ok_rps:,.0f}/s, p99 {out.paced.wrk.p99_ms:.1f} ms")
    if args.storm and mode == "default":
        drain(database_url, 600)
        out.storm = run_storm(backend, args, base_url, pids, files, database_url,
                              files["storm-post"].read_text())  # fmt: skip
    if mode == "split":
        progress(f"[{backend}/{mode}] {args.split_workers} `fedisocial worker` process(es) "
                 "work through the backlog")  # fmt: skip
        procs.stop(ours)
        analyze_as_autovacuum_would(database_url)
        db_cpu.begin()
        worker_pids = run_workers()
        cpu_before = cpu_seconds(worker_pids)
        out.drain_s = drain(database_url, 900)
        out.server_cpu_s = cpu_seconds(worker_pids) - cpu_before
        out.db_cpu_s = db_cpu.seconds()
        out.processing = asyncio.run(_processing(database_url, since))
        out.processing.first_queued = None  # rate from the workers' start, not the first accept
        out.drain_done = out.processing.done
        progress(f"  processed {out.processing.done:,} in {out.drain_s:.1f}s "
                 f"({out.drain_rate:,.0f}/s)")  # fmt: skip
        for pid in worker_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    else:
        drain(database_url, 600)
    procs.stop(ours)
    return out


def run_backend(
    backend: str, args: argparse.Namespace, procs: Processes, tmp: Path,
    pool: concurrent.futures.ProcessPoolExecutor,
) -> Result:  # fmt: skip
    result = Result(backend)
    with scratch_database(backend, tmp, "inbox") as database_url:
        root = tmp / backend
        port, bare_port = free_port(), free_port()
        base_url = f"http://127.0.0.1:{port}"
        progress(f"[{backend}] creating the instance (alice) in {root}")
        env = make_instance(root, base_url, database_url, ["alice"], private=False)
        env["BENCH_PORT"] = str(port)
        progress(f"[{backend}] {args.actors:,} remote actors with {args.keys} RSA keys")
        senders = make_senders(args.actors, args.keys, args.hosts)
        asyncio.run(store_senders(database_url, base_url, senders))
        keys_file = root / "keys.json"
        keys_file.write_text(json.dumps(
            {key_id: senders.public_pems[key] for _, key_id, key in senders.actors}
        ))  # fmt: skip

        # unique requests for each run against fedisocial (the bare app reuses some)
        modes = list(MODES) if args.mode == "both" else [args.mode]
        sets = {}
        for mode in modes:
            sets[f"warm-{mode}"] = 2_000
            sets[f"saturation-{mode}"] = int(args.duration * args.max_rate)
            sets[f"paced-{mode}"] = int(args.rate * args.duration * 1.1)
        files: dict[str, Path] = {}
        for label, count in sets.items():
            load = "create" if label.startswith("warm-") else args.load
            progress(f"[{backend}] signing {count:,} {label} requests ({load})")
            files[label] = root / f"requests-{label}"
            write_requests(files[label], base_url, senders, count, label, args.threads, pool,
                           load=load, targets_label=f"warm-{label.split('-', 1)[1]}")  # fmt: skip
        if args.storm:
            subprocess_env = {**os.environ, **env}
            posted = subprocess.run([FEDISOCIAL, "post", "alice", "A post everyone answers"],
                                    cwd=root, env=subprocess_env, capture_output=True, check=True,
                                    timeout=120)  # fmt: skip
            assert posted.returncode == 0
            post = asyncio.run(_local_post(database_url))
            files["storm-post"] = root / "storm-post"
            files["storm-post"].write_text(post)
            others = int(args.storm * 1.1)
            for label, count, reply_to in (("storm-alone", others, None),
                                           ("storm-others", others, None),
                                           ("storm", args.storm, post)):  # fmt: skip
                progress(f"[{backend}] signing {count:,} {label} requests")
                files[label] = root / f"requests-{label}"
                write_requests(files[label], base_url, senders, count, label, 1, pool,
                               in_reply_to=reply_to)  # fmt: skip
        files["lua"] = root / "replay.lua"
        files["lua"].write_text(REPLAY_LUA, encoding="utf-8")
        files["paced-lua"] = root / "replay-paced.lua"
        files["paced-lua"].write_text(
            REPLAY_LUA + PACED_LUA.replace("function done(", "function _unused_done("),
            encoding="utf-8",
        )

        progress(f"[{backend}] the bare app (Digest + RSA verify) on {bare_port}")
        bare_log = root / "bare.log"
        bare = procs.start(
            [sys.executable, str(HERE), "--bare-mode", "--port", str(bare_port),
             "--keys-file", str(keys_file)], log=bare_log, cwd=root,
        )  # fmt: skip
        wait_for(bare_port, "/health", bare, bare_log)
        bare_pids = process_tree(bare.pid)
        common = {"threads": args.threads, "connections": args.connections, "lua": files["lua"]}
        bare_url = f"http://127.0.0.1:{bare_port}/inbox"
        replay(bare_url, files[f"warm-{modes[0]}"], duration=2, server_pids=bare_pids, **common)
        progress(f"[{backend}] bare app: saturation {args.duration:g}s")
        result.bare = replay(bare_url, files[f"saturation-{modes[0]}"], duration=args.duration,
                             server_pids=bare_pids, **common)  # fmt: skip
        progress(f"  {result.bare.wrk.rps:,.0f} req/s, p99 {result.bare.wrk.p99_ms:.1f} ms")
        procs.stop(bare)
        for mode in modes:
            result.modes.append(
                run_mode(mode, backend, args, procs, root, env, database_url, files)
            )
    return result


def print_report(results: list[Result], args: argparse.Namespace) -> None:
    print()
    print(
        f"Inbox ingest: signed {'Create{Note}' if args.load == 'create' else 'mixed'} "
        f"deliveries from {args.actors:,} remote actors on "
        f"{args.hosts} hosts to the shared inbox, wrk -t{args.threads} -c{args.connections}, "
        f"{args.duration:g}s runs, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}"
    )
    for mode, text in MODES.items():
        print(f"  {mode}: {text}")
    for mode, (accepted, share, processed) in TARGETS.items():
        print(f"Targets ({mode}): ≥ {accepted:,} accepted/s and ≥ {share:.0%} of the bare "
              f"Digest + RSA verify app; ≥ {processed:,} processed/s")  # fmt: skip
    print(
        f"Targets (both modes): p99 at {args.rate:,}/s < "
        + ", ".join(f"{ms:g} ms on {backend}" for backend, ms in TARGET_P99_MS.items())
    )
    print()
    header = ("backend", "mode", "accepted/s", "bare/s", "ratio", "p50/p99 ms ours | bare",
              "processed/s", f"at {args.rate:,}/s: rate, p99",
              "CPU ms/activity: accept + process | db | bare")  # fmt: skip
    rows = []
    for r in results:
        assert r.bare
        bare = r.bare.wrk
        for m in r.modes:
            assert m.ours and m.paced
            ours, paced = m.ours.wrk, m.paced.wrk
            ratio = ours.ok_rps / bare.rps if bare.rps else 0.0
            rate = m.processing.rate if m.mode == "default" else m.drain_rate
            accepted, share, processed = TARGETS[m.mode]
            p99_ok = paced.ok_rps >= 0.95 * args.rate and paced.p99_ms < TARGET_P99_MS[r.backend]
            done = max(m.processing.done, 1)
            if m.mode == "split":  # the web processes' CPU per accept, the workers' per job
                accept_ms = 1000 * ours.server_cpu_s / max(ours.requests, 1)
                cpu = f"{accept_ms:.2f} + {1000 * m.server_cpu_s / done:.2f}"
            else:
                cpu = f"{1000 * m.server_cpu_s / done:.2f}"
            rows.append((
                r.backend, m.mode, f"{ours.ok_rps:,.0f} {mark(ours.ok_rps >= accepted)}",
                f"{bare.rps:,.0f}", f"{ratio:.0%} {mark(ratio >= share)}",
                f"{ours.p50_ms:.1f}/{ours.p99_ms:.1f} | {bare.p50_ms:.1f}/{bare.p99_ms:.1f}",
                f"{rate:,.0f} {mark(rate >= processed)}",
                f"{paced.ok_rps:,.0f}, {paced.p99_ms:.1f} ms {mark(p99_ok)}",
                f"{cpu} | {1000 * m.db_cpu_s / done:.2f} | "
                f"{1000 * bare.server_cpu_s / max(bare.requests, 1):.2f}",
            ))  # fmt: skip
    print_table(header, rows)
    print()
    for r in results:
        assert r.bare
        for m in r.modes:
            assert m.ours and m.paced
            proc, notes = m.processing, []
            answered = m.ours.wrk.requests - m.ours.wrk.non_2xx
            notes.append(f"{answered:,} answered 202 in the saturation run, "
                         f"{proc.jobs:,} jobs queued (in-flight requests at wrk's stop included), "
                         f"{proc.done:,} done, {proc.failed:,} failed, {proc.notes:,} Notes "
                         f"stored, {proc.feed_entries:,} feed entries")  # fmt: skip
            if m.mode == "default":
                notes.append(f"{m.drain_done:,} processed after the load stopped, in "
                             f"{m.drain_s:.1f}s")  # fmt: skip
            for label, rep in (("saturation", m.ours), ("paced", m.paced)):
                if rep.wrk.non_2xx or rep.wrk.socket_errors:
                    notes.append(f"{label}: {rep.wrk.non_2xx} non-2xx, socket errors "
                                 f"{rep.wrk.socket_errors or 'none'}")  # fmt: skip
                if rep.wrapped:
                    notes.append(f"{label}: ran out of unique requests ({rep.wrapped} wraps; "
                                 "repeats were deduplicated; raise --max-rate)")  # fmt: skip
            if m.storm is not None:
                st = m.storm
                notes.append(f"reply storm: others' p99 {st.alone.p99_ms:.1f} ms alone "
                             f"({st.alone.rps:,.0f}/s), {st.during.p99_ms:.1f} ms during the "
                             f"storm ({st.during.rps:,.0f}/s; storm {st.storm.rps:,.0f}/s, p99 "
                             f"{st.storm.p99_ms:.1f} ms); {st.replies:,} replies stored, all "
                             f"processed {st.processed_s:.1f}s after it began")  # fmt: skip
            notes.append(f"other load {m.ours.wrk.other_cores:.2f} cores "
                         f"(bare run: {r.bare.wrk.other_cores:.2f})")  # fmt: skip
            print(f"  {r.backend}/{m.mode}: " + "; ".join(notes))
    print()
    print(
        "processed/s: default = process_activity jobs done / (last done - first queued) of "
        "the saturation run,\nbacklog included; split = the whole backlog (saturation + "
        "fixed-rate runs) by the worker processes alone.\nwrk shares the cores with the servers "
        "(and PostgreSQL): absolute rates understate a server on its own;\nthe CPU per "
        "activity travels."
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Inbox ingest of signed Create{Note} deliveries: accepted/s, processed/s "
        "and p99 at a fixed rate for `fedisocial serve --workers 2`, beside a bare Starlette "
        "app doing only Digest + RSA verify. Prints figures; never asserts."
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both",
                        help="backend(s) to measure (default both)")  # fmt: skip
    parser.add_argument("--duration", type=float, default=10,
                        help="seconds per measured wrk run (default 10)")  # fmt: skip
    parser.add_argument("--rate", type=int, default=1_000,
                        help="offered rate of the fixed-rate run (default 1000)")  # fmt: skip
    parser.add_argument("--max-rate", type=int, default=8_000,
                        help="unique requests signed per second of run (default 8000)")  # fmt: skip
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--actors", type=int, default=1_000,
                        help="remote actors sending (default 1000)")  # fmt: skip
    parser.add_argument("--keys", type=int, default=200,
                        help="distinct RSA keys among them (default 200)")  # fmt: skip
    parser.add_argument("--hosts", type=int, default=100,
                        help="remote hosts they are on (default 100)")  # fmt: skip
    parser.add_argument("--mode", choices=(*MODES, "both"), default="both",
                        help="default, split or both (default both); see the table")  # fmt: skip
    parser.add_argument("--load", choices=("create", "mixed"), default="create",
                        help="create: Create{Note} only (default); mixed: Create, Like, Announce, "
                        "Update, Delete and Follow in the proportions of MIX")  # fmt: skip
    parser.add_argument("--storm", type=int, default=0, metavar="N",
                        help="default: also N replies to one post of alice's (a reply storm) "
                        "at half the fixed rate, beside other senders at the other half: their "
                        "p99 alone and during the storm (e.g. 10000; default off)")  # fmt: skip
    parser.add_argument("--split-workers", type=int, default=1,
                        help="`fedisocial worker` processes in split mode (default 1)")  # fmt: skip
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (logs, SQLite database)")  # fmt: skip
    parser.add_argument("--bare-mode", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--keys-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_mode:
        return bare_main(args.port, 2, args.keys_file)
    if shutil.which("wrk") is None:
        print("wrk is not installed. On Debian/Ubuntu: apt-get install -y wrk", file=sys.stderr)
        return 2

    def body(procs: Processes, tmp: Path) -> int:
        results = []
        with concurrent.futures.ProcessPoolExecutor(2) as pool:
            for backend in backends(args.database):
                results.append(run_backend(backend, args, procs, tmp, pool))
        print_report(results, args)
        return 0

    return run_in_scratch("fedisocial-inbox-", args.keep, body)


if __name__ == "__main__":
    sys.exit(main())
