"""The ``livetutor`` command.

Subcommands: serve, token, ask, llm, worker, beat, dlq, reindex, cache and dev-cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from core.datadir import restrict_umask
from core.errors import LiveTutorError
from core.settings import Settings

# Where `livetutor ask` connects without --url or LIVETUTOR_URL: where `serve` listens by default.
DEFAULT_URL = "http://127.0.0.1:8000"


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if getattr(args, "metrics_port", None) is not None:
        overrides["metrics_port"] = args.metrics_port
    if getattr(args, "workers", None) is not None:
        overrides["workers"] = args.workers
    return Settings.from_env(None, **overrides)


def _serve(args: argparse.Namespace) -> int:
    from core.logs import configure

    settings = _settings(args)
    configure(settings.log_level, settings.log_json and not sys.stderr.isatty())
    if settings.workers > 1:
        # The supervisor: each worker process builds its own pod (server.workers).
        from server.workers import serve_workers

        return serve_workers(settings, "LiveTutor")
    from server.app import create_app, create_metrics_app
    from server.runtime import Runtime
    from server.serve import Server, metrics_config, serve_announced, uvicorn_config

    runtime = Runtime(settings)
    server = Server(
        uvicorn_config(create_app(runtime=runtime), settings),
        metrics=metrics_config(create_metrics_app(runtime), settings),
    )
    return 0 if serve_announced(server, "LiveTutor") else 1


def _token(args: argparse.Namespace) -> int:
    from core.auth import TokenCodec, load_secret

    settings = _settings(args)
    codec = TokenCodec(load_secret(settings), settings.auth.jwt_issuer)
    courses = args.course or ["demo"]
    ttl_s = args.expires_s if args.expires_s is not None else settings.auth.token_ttl_s
    token = codec.issue(args.user, role=args.role, courses=courses, ttl_s=ttl_s)
    if args.out is None:
        print(token)
        return 0
    # Created 0600 before anything is written: the token is a password until it expires.
    out = Path(args.out)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(token + "\n")
    return 0


def _ask(args: argparse.Namespace) -> int:
    from websockets.exceptions import InvalidStatus, WebSocketException

    from realtime.client import TutorClient, ws_url

    token = args.token or os.environ.get("LIVETUTOR_TOKEN", "")
    if not token:
        print("livetutor ask: give --token or set LIVETUTOR_TOKEN", file=sys.stderr)
        return 2
    address = args.url or os.environ.get("LIVETUTOR_URL") or DEFAULT_URL
    try:
        url = ws_url(address)
    except ValueError as exc:
        print(f"livetutor ask: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        async with await TutorClient.connect(
            url, token, timeout_s=args.connect_timeout_s
        ) as client:
            ask_id = await client.ask(
                args.question, course=args.course, mode=args.mode, session=args.session
            )

            def show(text: str) -> None:
                sys.stdout.write(text)
                sys.stdout.flush()

            answer = await client.answer(ask_id, timeout_s=args.timeout_s, on_delta=show)
            for error in answer.errors:
                print(f"\n[{error['code']}] {error['message']}", file=sys.stderr)
            if not answer.stream:
                return 1
            print()
            for i, source in enumerate(answer.sources, start=1):
                # The number the answer cites it by ([n] in the text).
                n = source.get("n", i)
                print(f"[{n}] {source['document']}, p. {source['page']}: {source['heading']}")
            print(f"(session {answer.session}, {answer.reason}, model {answer.end.get('model')})")
            return 0 if answer.reason == "stop" else 1

    # Every failure is one line on stderr; none of them repeats the token.
    try:
        return asyncio.run(run())
    except InvalidStatus as exc:
        print(f"livetutor ask: {url} refused the connection: {_refusal(exc)}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"livetutor ask: {url} did not answer in time", file=sys.stderr)
        return 1
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        print(f"livetutor ask: cannot reach {url}: {reason}", file=sys.stderr)
        return 1
    except WebSocketException as exc:
        print(
            f"livetutor ask: the connection to {url} failed ({type(exc).__name__})", file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        return 130


def _refusal(exc: Any) -> str:
    """``HTTP 403 (error code: message)`` from a refused handshake, without echoing request data."""
    response = exc.response
    detail = ""
    try:
        body = json.loads(bytes(response.body or b"").decode("utf-8", "replace") or "{}")
        if isinstance(body, dict) and body.get("error"):
            detail = f" ({body['error']}: {str(body.get('message', ''))[:200]})"
    except ValueError:
        pass
    return f"HTTP {response.status_code}{detail}"


def _dev_cluster(args: argparse.Namespace) -> int:
    import shutil
    import signal
    import tempfile

    from devtools.cluster import DevCluster

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        chroma = worker = model = None
        pod_env: dict[str, str] = {}
        knowledge_root = Path(tempfile.mkdtemp(prefix="livetutor-knowledge-"))
        if args.llm == "local":
            from devtools.local import ModelServerProcess

            # One model server for every pod, as `livetutor llm` would run in production.
            model = ModelServerProcess(knowledge_root / "llm.log")
            await asyncio.to_thread(model.start)
            pod_env |= model.pod_env()
        if args.workers:
            from devtools.local import ChromaServer

            # One shared vector store: pods must not open one embedded store together.
            chroma = ChromaServer(knowledge_root / "chroma", knowledge_root / "chroma.log")
            pod_env["CHROMA_URL"] = await asyncio.to_thread(chroma.start)
        cluster = DevCluster(
            pods=args.pods,
            sentinels=args.sentinels,
            replica=not args.no_replica,
            pod_env=pod_env,
        )
        try:
            async with cluster:
                if args.workers:
                    from devtools.local import WorkerProcess

                    env = {**cluster.pod_env("worker"), "LIVETUTOR_LOG_JSON": "false"}
                    worker = WorkerProcess(env, cluster.root / "worker.log")
                    await asyncio.to_thread(worker.start)
                print(cluster.describe())
                if worker is not None and chroma is not None:
                    print(f"worker: metrics on :{worker.metrics_port}; vectors at {chroma.url}")
                if model is not None:
                    print(f"model: {model.model} at {model.base_url}")
                print(f"\nexport LIVETUTOR_TOKEN={cluster.token('alice')}")
                for pod in cluster.pods:
                    print(f"{pod.name}: livetutor ask --url {pod.ws_url} 'What is a premise?'")
                print(f"\nfiles and logs in {cluster.root}; Ctrl-C stops everything", flush=True)
                await stop.wait()
                print("stopping", flush=True)
                if worker is not None:
                    await asyncio.to_thread(worker.stop)
        finally:
            if worker is not None:
                await asyncio.to_thread(worker.stop)
            if chroma is not None:
                await asyncio.to_thread(chroma.stop)
            if model is not None:
                await asyncio.to_thread(model.stop)
            shutil.rmtree(knowledge_root, ignore_errors=True)

    asyncio.run(run())
    return 0


def _llm(args: argparse.Namespace) -> int:
    import signal

    from core.logs import configure
    from tutor.local_model import LocalModelServer

    settings = _settings(args)
    configure(settings.log_level, settings.log_json and not sys.stderr.isatty())
    server = LocalModelServer(
        settings.local,
        log_path=None,
        host=args.llm_host,
        port=args.llm_port,
        api_key=settings.llm.api_key,
    )

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await server.start()
        try:
            loaded = asyncio.create_task(server.wait_first_load(settings.local.load_timeout_s))
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({loaded, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if stop.is_set():
                loaded.cancel()
                return 0
            if not loaded.result():
                print(
                    f"livetutor llm: {server.model} did not load (see llama.cpp's output above)",
                    file=sys.stderr,
                )
                return 1
            print(
                f"{server.model} serves the OpenAI API at http://{args.llm_host}:{server.port}/v1\n"
                f"point pods at it: LIVETUTOR_LLM_PROVIDER=openai "
                f"OPENAI_BASE_URL=http://<this host>:{server.port}/v1 LLM_MODEL={server.model}",
                flush=True,
            )
            await stop.wait()
            return 0
        finally:
            await server.stop()

    return asyncio.run(run())


def _cache_retire(args: argparse.Namespace) -> int:
    from cache.answers import ANSWERS
    from cache.codec import Namespace
    from cache.redis_tier import RedisTier
    from cache.retrieval import RETRIEVAL
    from cache.two_tier import TwoTierCache
    from core.errors import SharedUnavailable
    from core.redis_link import connect

    settings = _settings(args)
    if not settings.redis.enabled:
        print(
            "livetutor cache retire: no Redis is configured (REDIS_URL or REDIS_SENTINELS), so "
            "each server keeps its cache in its own memory; restart it to start afresh",
            file=sys.stderr,
        )
        return 2
    namespaces: dict[str, Namespace[Any]] = {"answers": ANSWERS, "retrieval": RETRIEVAL}
    namespace = namespaces[args.namespace]

    async def run() -> int:
        client = connect(settings.redis)
        try:
            version = await TwoTierCache(settings.cache, RedisTier(client)).retire(namespace)
        except SharedUnavailable as exc:
            print(f"livetutor cache retire: cannot reach Redis: {exc}", file=sys.stderr)
            return 1
        finally:
            await client.aclose()
        print(f"retired every cached {args.namespace} value (version {version}) on every pod")
        return 0

    return asyncio.run(run())


def _worker(args: argparse.Namespace) -> int:
    from core.datadir import make_private
    from core.logs import configure
    from tasks.worker import run_worker

    settings = _settings(args)
    configure(settings.log_level, settings.log_json and not sys.stderr.isatty())
    make_private(settings.data_dir)
    return run_worker(settings, concurrency=args.concurrency, loglevel=settings.log_level)


def _beat(args: argparse.Namespace) -> int:
    from core.datadir import make_private
    from core.logs import configure
    from tasks.worker import run_beat

    settings = _settings(args)
    configure(settings.log_level, settings.log_json and not sys.stderr.isatty())
    make_private(settings.data_dir)
    return run_beat(settings, loglevel=settings.log_level)


def _dlq(args: argparse.Namespace) -> int:
    import time

    from knowledge.vectors import KnowledgeBase

    settings = _settings(args)
    kb = KnowledgeBase.open(settings)
    if args.dlq_command == "list":
        letters = kb.dead_letters()
        if not letters:
            print("no dead letters")
        for d in letters:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.failed_at))
            print(f"{d.id}\t{when}Z\tattempts={d.attempts}\t{d.reason}")
        return 0
    from knowledge.ingest import Ingest

    job = Ingest.create(settings, kb=kb)
    try:
        letter = job.prepare_replay(args.id)
    except KeyError:
        print(
            f"livetutor dlq: no dead letter {args.id!r} (see livetutor dlq list)", file=sys.stderr
        )
        return 1
    if settings.redis.enabled and settings.knowledge.jobs != "inprocess":
        from tasks.app import create_celery

        create_celery(settings).send_task(f"livetutor.{letter.task}", args=[letter.document])
        print(f"replayed {letter.id}: queued for the workers")
        return 0
    from core.errors import DocumentRejected

    try:
        status = job.run(letter.task, letter.document)
    except DocumentRejected as exc:
        job.dead_letter(letter.task, letter.document, exc.reason, letter.attempts + 1)
        print(f"replayed {letter.id}: failed again: {exc.reason}", file=sys.stderr)
        return 1
    print(f"replayed {letter.id}: {status}")
    return 0


def _reindex(args: argparse.Namespace) -> int:
    from core.logs import configure
    from knowledge.vectors import KnowledgeBase
    from tasks.reindex import Item, plan, run_reindex
    from tasks.runners import jobs_kind

    settings = _settings(args)
    # The jobs' own logs go to stderr; stdout is the progress below.
    configure(settings.log_level, settings.log_json and not sys.stderr.isatty())
    kb = KnowledgeBase.open(settings)
    try:
        records = plan(kb, args.course)
        where = "on the Celery workers" if jobs_kind(settings) == "celery" else "in this process"
        count = f"{len(records)} ready document{'' if len(records) == 1 else 's'}"
        print(f"re-indexing {count} {where}", flush=True)
        shown: dict[str, tuple[str, int]] = {}

        def show(item: Item) -> None:
            r = item.record
            name = f"{r.course} / {r.title}"
            if item.outcome:
                endings = {
                    "ready": f"ready, {r.chunks:,} chunks",
                    "current": "already current",
                    "failed": f"failed: {r.reason or 'see livetutor dlq list'}",
                    "gone": "deleted meanwhile",
                    "interrupted": "interrupted (run the command again to finish)",
                }
                print(f"{name}: {endings.get(item.outcome, item.outcome)}", flush=True)
                return
            # A line per status and per tenth of the way, not per poll.
            state = (r.status, int(r.progress * 10))
            if r.status == "indexing" and shown.get(r.id) != state:
                shown[r.id] = state
                print(
                    f"{name}: indexing {r.progress:.0%} ({r.pages} pages, {r.chunks:,} chunks)",
                    flush=True,
                )

        items = asyncio.run(run_reindex(settings, kb, records, show))
    finally:
        kb.close()
    counts = {o: sum(1 for i in items if i.outcome == o) for o in ("ready", "current", "failed")}
    print(
        f"{counts['ready']} re-indexed, {counts['current']} already current, "
        f"{counts['failed']} failed"
    )
    return 1 if counts["failed"] or any(i.outcome == "interrupted" for i in items) else 0


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    root = argparse.ArgumentParser(prog="livetutor", description="Real-time AI tutoring server")
    sub = root.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="interface to bind (LIVETUTOR_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port, 0 for any free one (LIVETUTOR_PORT)")
    serve.add_argument(
        "--metrics-port",
        type=int,
        help="port of GET /metrics, 0 for any free one (LIVETUTOR_METRICS_PORT, default 9807)",
    )
    serve.add_argument("--data-dir", help="state directory (LIVETUTOR_DATA_DIR, default ./data)")
    serve.add_argument(
        "--workers",
        type=int,
        help="pods to run on this port, a process each (LIVETUTOR_WORKERS, default 1); "
        "more than 1 needs Redis, Postgres and a chromadb server; worker i serves "
        "GET /metrics on the metrics port + i",
    )
    serve.set_defaults(run=_serve)

    token = sub.add_parser("token", help="print a signed token for a user")
    token.add_argument("--user", required=True)
    token.add_argument("--role", choices=["learner", "instructor", "admin"], default="learner")
    token.add_argument(
        "--course", action="append", help="course the user may use (repeatable; default demo)"
    )
    token.add_argument("--expires-s", type=int, help="lifetime in seconds (default one day)")
    token.add_argument("--data-dir", help="state directory holding the signing secret")
    token.add_argument("--out", help="write the token to this file (mode 0600) instead of stdout")
    token.set_defaults(run=_token)

    ask = sub.add_parser("ask", help="ask a running server and stream the answer")
    ask.add_argument("question")
    ask.add_argument(
        "--url",
        help=f"server address as serve prints it, or its ws(s)://…/ws URL "
        f"(LIVETUTOR_URL, default {DEFAULT_URL})",
    )
    ask.add_argument("--token", help="token (or LIVETUTOR_TOKEN)")
    ask.add_argument("--course", default="demo")
    ask.add_argument("--mode", choices=["explain", "hint"], default="explain")
    ask.add_argument("--session", help="continue this session")
    ask.add_argument("--timeout-s", type=float, default=120.0, help="for the whole answer")
    ask.add_argument("--connect-timeout-s", type=float, default=10.0, help="for the connection")
    ask.set_defaults(run=_ask)

    llm = sub.add_parser(
        "llm", help="run the local model server (llama.cpp, OpenAI API) for pods to share"
    )
    llm.add_argument(
        "--host", dest="llm_host", default="127.0.0.1", help="interface (default 127.0.0.1)"
    )
    llm.add_argument("--port", dest="llm_port", type=int, default=8090, help="port (default 8090)")
    llm.set_defaults(run=_llm)

    cache = sub.add_parser("cache", help="manage the shared cache")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True)
    retire = cache_sub.add_parser(
        "retire", help="drop every cached value of a kind on every pod (after a prompt change)"
    )
    retire.add_argument("namespace", choices=["answers", "retrieval"])
    retire.set_defaults(run=_cache_retire)

    dev = sub.add_parser("dev-cluster", help="run Redis, Sentinels and pods locally")
    dev.add_argument("--pods", type=int, default=2, help="server pods (default 2)")
    dev.add_argument("--sentinels", type=int, default=3, help="Sentinels (default 3)")
    dev.add_argument("--no-replica", action="store_true", help="run no Redis replica")
    dev.add_argument(
        "--no-workers",
        dest="workers",
        action="store_false",
        help="run no chromadb server and document worker (uploads then stay queued)",
    )
    dev.add_argument(
        "--llm",
        choices=["offline", "local"],
        default="offline",
        help="offline tutor (default), or one shared local model server (the 'local' extra)",
    )
    dev.set_defaults(run=_dev_cluster)

    worker = sub.add_parser("worker", help="run a Celery worker for document jobs")
    worker.add_argument(
        "--concurrency", type=int, help="jobs at once (LIVETUTOR_WORKER_CONCURRENCY)"
    )
    worker.add_argument("--data-dir", help="state directory (LIVETUTOR_DATA_DIR)")
    worker.set_defaults(run=_worker)

    beat = sub.add_parser("beat", help="run Celery beat (the periodic cleanup)")
    beat.add_argument("--data-dir", help="state directory for the schedule file")
    beat.set_defaults(run=_beat)

    dlq = sub.add_parser("dlq", help="list or replay document jobs that failed for good")
    dlq.add_argument("--data-dir", help="state directory (LIVETUTOR_DATA_DIR)")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_sub.add_parser("list", help="list dead letters: id, time, attempts, reason")
    replay = dlq_sub.add_parser("replay", help="run a dead letter's job again")
    replay.add_argument("id")
    dlq.set_defaults(run=_dlq)

    reindex = sub.add_parser(
        "reindex",
        help="embed every ready document again (after changing the embedder), as jobs",
        description="Re-embed the ready documents of one course or all, from their stored "
        "files: on the Celery workers when Redis is configured (they must run with the new "
        "embedder), else in this command (stop the server first: it shares the embedded "
        "store). Documents already indexed with the configured embedders are skipped, so "
        "running it again finishes what is left.",
    )
    reindex.add_argument("--course", help="only this course (default: every course)")
    reindex.add_argument("--data-dir", help="state directory (LIVETUTOR_DATA_DIR)")
    reindex.set_defaults(run=_reindex)
    return root


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``livetutor`` console script."""
    args = parser().parse_args(argv)
    # Whatever a command writes (the data directory above all) is private to its user.
    restrict_umask()
    try:
        code: int = args.run(args)
    except LiveTutorError as exc:
        print(f"livetutor: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
