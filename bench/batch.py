"""Catalogue runs: N looks as one batch, against the FAL test server with a fixed model latency.

    python -m bench.batch [--persons 20] [--outfits 25] [--latency 2.0] [--concurrency 100]
                          [--processes 1] [--threads 16]

- The batch is submitted through the service (as the page, REST and gradio_client do): every
  look reserved, each photo uploaded once, one async job per look.
- The looks are run by `--processes` separate `python -m tryon.worker` processes (the same
  WorkerPool the app runs in-process), each with `--threads` worker threads and
  TRYON_FAL_CONCURRENCY = concurrency / processes, on the embedded Redis they share.
- The FAL test server runs in a process of its own (forked), as FAL is another machine.
- Reported: seconds from the submit until every look is finished, against the ideal
  ceil(N / concurrency) x latency; looks done / error / lost; model generations at the test
  server (a look generated twice shows as generations > looks); each worker process's peak RSS.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, machine, summary

_tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
from fal_server import FalTestServer, make_certificate  # noqa: E402

_CERT, _KEY = make_certificate(_tmp)
_server = FalTestServer(cert=_CERT, key_file=_KEY)  # its socket is bound; it is served by a process of its own
os.environ.update(_server.env())  # before fal-client is imported

from synthetic import draw_garment, draw_person  # noqa: E402

from tryon.config import Settings  # noqa: E402
from tryon.processes import die_with_parent  # noqa: E402
from tryon.jobs import JobQueue  # noqa: E402
from tryon.jobs.batch import OutfitRequest  # noqa: E402
from tryon.providers import build_provider  # noqa: E402
from tryon.redis_server import connect  # noqa: E402
from tryon.service import TryOnService  # noqa: E402


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def serve_apart(latency_s: float):
    """The FAL test server in a forked process of its own (FAL is another machine: its CPU is not
    ours to share); returns (process, pipe): send "stop" to get (generations, submits) back."""
    import multiprocessing

    parent, child = multiprocessing.Pipe()

    def serve(pipe) -> None:
        _server.start()
        _server.behaviour.latency_s = latency_s
        pipe.send("ready")
        pipe.recv()
        pipe.send((len(_server.jobs), len(_server.submits)))
        _server.stop()

    process = multiprocessing.get_context("fork").Process(target=serve, args=(child,), daemon=True)
    process.start()
    assert parent.recv() == "ready"
    _server.httpd.socket.close()  # this process's copy: the child serves
    return process, parent


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 1)  # utime + stime


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=20)
    parser.add_argument("--outfits", type=int, default=25)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=300.0, help="give up waiting after this many seconds")
    args = parser.parse_args()
    looks = args.persons * args.outfits
    server_process, server_pipe = serve_apart(args.latency)
    data_dir = _tmp / "data"
    env = {**os.environ, **_server.env(), "TRYON_DATA_DIR": str(data_dir), "TRYON_JOB_TTL": "1h",
           "TRYON_BATCH_MAX_LOOKS": str(max(200, looks)), "TRYON_WORKERS": str(args.threads),
           "TRYON_FAL_CONCURRENCY": str(max(1, args.concurrency // args.processes)), "TRYON_REQUEST_TIMEOUT": "120"}
    settings = Settings.from_env(env)
    handle = connect(None, settings.data_dir)  # the embedded Redis; the worker processes share it
    queue = JobQueue(handle.client, settings.job_ttl_s, settings.job_visibility_s, settings.job_max_attempts)
    service = TryOnService(settings, build_provider(settings), queue)
    queue.ensure_group()
    persons = [png(draw_person(shirt=(40 + 10 * n, 120, 200 - 5 * n)).image) for n in range(args.persons)]
    garments = [png(draw_garment("tshirt", colour=(200, 8 * n % 255, 60))) for n in range(args.outfits)]
    logs = [open(_tmp / f"worker-{n}.log", "wb") for n in range(args.processes)]  # a pipe nobody reads would fill and block them
    workers = [subprocess.Popen([sys.executable, "-m", "tryon.worker"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=die_with_parent()) for log in logs]
    time.sleep(3.0)  # the workers import and connect before the clock starts
    started = time.perf_counter()
    batch = service.batches.submit(persons, [OutfitRequest([g]) for g in garments])
    submitted_s = time.perf_counter() - started
    deadline = time.monotonic() + args.timeout
    shown = time.monotonic()
    while True:
        # Read as a client polling the batch would; not too often: this process is also the FAL server.
        status = service.batches.status(batch["batch_id"])
        if status["finished"] or time.monotonic() > deadline:
            break
        if time.monotonic() - shown > 5:
            print(f"  {time.perf_counter() - started:5.1f} s: {status['counts']}", file=sys.stderr, flush=True)
            shown = time.monotonic()
        time.sleep(0.5)
    all_done_s = time.perf_counter() - started
    rss = [peak_rss_mib(w.pid) for w in workers]
    cpu = {"workers": [cpu_s(w.pid) for w in workers], "FAL test server": cpu_s(server_process.pid),
           "bench (submit, status polls)": cpu_s(os.getpid())}
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(timeout=60)
    counts = status["counts"]
    # Where a look's time went once a worker held it: claim -> FAL submit -> outcome written.
    jobs = queue.get_many([cell["job_id"] for cell in status["cells"]])
    phases = {
        "claim_to_submit_ms": [j.provider_started_at - j.started_at for j in jobs if j and j.provider_started_at and j.started_at],
        "submit_to_outcome_ms": [j.finished_at - j.provider_started_at for j in jobs if j and j.finished_at and j.provider_started_at],
    }
    lost = looks - counts["done"] - counts["error"]
    server_pipe.send("stop")
    generations, _submits = server_pipe.recv()
    ideal = math.ceil(looks / args.concurrency) * args.latency
    print(f"\n{looks} looks ({args.persons} persons x {args.outfits} outfits) as one batch, model latency {args.latency:.1f} s, "
          f"provider concurrency {args.concurrency}, {args.processes} worker process(es) x {args.threads} threads ({machine()})")
    print(f"  submitted in {submitted_s:.2f} s; all finished after {all_done_s:.2f} s "
          f"(ideal {ideal:.1f} s: {all_done_s / ideal:.2f}x)")
    print(f"  done {counts['done']}, error {counts['error']}, lost {lost}, model generations {generations} "
          f"(generated twice: {max(0, generations - looks)}); peak RSS per worker process {rss} MiB")
    print(f"  CPU seconds: {cpu}")
    for name, values in phases.items():
        if values:
            print(f"  {name}: {summary([float(v) for v in values])}")
    print(json.dumps({"benchmark": "catalogue batch", "looks": looks, "latency_s": args.latency,
                      "concurrency": args.concurrency, "processes": args.processes, "threads": args.threads,
                      "submit_s": round(submitted_s, 2), "all_finished_s": round(all_done_s, 2), "ideal_s": ideal,
                      "x_ideal": round(all_done_s / ideal, 2), "done": counts["done"], "error": counts["error"],
                      "lost": lost, "generations": generations, "generated_twice": max(0, generations - looks),
                      "peak_rss_mib": rss, "cpu_s": cpu,
                      **{name: summary([float(v) for v in values]) for name, values in phases.items() if values},
                      "machine": machine()}))
    handle.close()
    server_process.join(timeout=10)


if __name__ == "__main__":
    main()
