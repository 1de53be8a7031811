"""Where runs execute: in this process, in N local processes, or as Ray tasks with their CPU/GPU needs.

Workers only compute; the driver alone writes records, as results arrive, so a killed grid loses at most the
runs in flight and never leaves a half-written record. Originating modules are built first, once each, as
their own jobs, so that parallel runs of a cell do not train the same module twice.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness.errors import ConfigError
from harness.grid.conditions import NEEDS_ORIGIN
from harness.grid.spec import RunSpec
from harness.runs.record import MetaInfo, ResultInfo, RunInfo, RunRecord
from harness.runs.rundir import RunDir
from hubport.errors import HubportError

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Job:
    kind: str          # "origin": build the run's originating module; "run": the run itself
    spec: RunSpec


@dataclass(frozen=True)
class Summary:
    planned: int
    already_done: int
    skipped_failed: int
    ok: int
    failed: int
    refused: int = 0   # runs whose port hubport refused (recorded as results, not failures)


def run_job(job: Job, out_dir: str, threads: int | None = None) -> dict:
    """Execute one job in whatever process this is; never raises: a failure comes back as a failed record.
    The answer is {"kind", "key", "record": RunRecord | None} (None: an originating module was built)."""
    from harness.runs.run import ensure_origin, execute

    quiet_libraries()
    if threads:
        import torch

        torch.set_num_threads(threads)
    began = time.perf_counter()
    try:
        if job.kind == "origin":
            ensure_origin(job.spec, Path(out_dir))
            return {"kind": job.kind, "key": job.spec.origin_plan_key, "record": None}
        return {"kind": job.kind, "record": execute(job.spec, Path(out_dir))}
    except Exception as exc:   # recorded, not raised: one broken run must not stop a grid of 1,440
        return {"kind": job.kind, "key": job.spec.origin_plan_key, "record": failure(job.spec, exc, began)}


def quiet_libraries() -> None:
    """Silence the libraries' per-forward deprecation chatter (adapters on transformers 4.57), which would
    otherwise print hundreds of identical lines per grid; real errors still surface as failed records."""
    import logging
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers configures its logger
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message="There are adapters available but none are activated")
    for name in ("transformers", "adapters", "peft", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)


def failure(spec: RunSpec, exc: BaseException, began: float | None = None,
            error: dict | None = None) -> RunRecord:
    """A failed run's record: the error in one line plus the traceback (or the given error of the run's
    originating module), and a success's provenance."""
    lines = str(exc).strip().splitlines()
    message = exc.one_line() if isinstance(exc, HubportError) else (lines[0] if lines else type(exc).__name__)
    error = error or {"type": type(exc).__name__, "message": message,
                      "traceback": "".join(traceback.format_exception(exc))}
    seconds = time.perf_counter() - began if began is not None else math.nan
    finished = datetime.now(UTC).isoformat(timespec="seconds")
    return RunRecord(RunInfo(spec.run_id, "failed", spec.to_dict(), finished=finished),
                     ResultInfo(error=error, seconds=seconds), MetaInfo.here())


def run_grid(specs: list[RunSpec], out_dir: str | Path, *, config: dict, command: str,
             executor: str = "local", jobs: int = 1, ray_address: str | None = None,
             retry_failed: bool = False, console=None) -> Summary:
    """Run every spec not yet done in out_dir (resumable), building originating modules first."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor '{executor}'", "choose local or ray")
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    rundir = RunDir(out_dir)
    with rundir.lock():
        rundir.prepare(config, command)
        done = {s.run_id for s in specs if rundir.done(s.run_id, s.budgets)}
        held = {s.run_id for s in specs
                if s.run_id not in done and not retry_failed and rundir.has_failed(s.run_id)}
        todo = [s for s in specs if s.run_id not in done and s.run_id not in held]
        origins = list({s.origin_plan_key: s for s in todo
                        if s.condition in NEEDS_ORIGIN and s.origin_module is None}.values())
        ok = failed = refused = 0
        with _progress(console) as progress, _session(executor if todo else "local", ray_address):
            bar = progress.add_task("originating modules", total=len(origins), status="")
            broken = {}
            for result in _dispatch([Job("origin", s) for s in origins], out_dir, executor, jobs, progress):
                if result["record"] is not None:
                    broken[result["key"]] = result["record"].result_info.error
                progress.advance(bar)
            bar = progress.add_task("runs", total=len(todo), status="")
            runnable = []
            for spec in todo:
                error = broken.get(spec.origin_plan_key) if spec.condition in NEEDS_ORIGIN else None
                if error is None:
                    runnable.append(Job("run", spec))
                    continue
                rundir.write(failure(spec, RuntimeError("originating module failed"), error=error))
                failed += 1
                progress.advance(bar)
            for result in _dispatch(runnable, out_dir, executor, jobs, progress):
                record = result["record"]
                rundir.write(record)
                status = record.status
                ok, refused = ok + (status == "ok"), refused + (status == "refused")
                failed += not record.finished
                if status != "ok":
                    tag = "[yellow]refused[/yellow]" if status == "refused" else "[red]failed[/red]"
                    message = f"{tag} {record.run_id}: {record.result_info.error['message']}"
                    progress.console.print(message, highlight=False)
                progress.advance(bar)
    return Summary(planned=len(specs), already_done=len(done), skipped_failed=len(held), ok=ok, failed=failed,
                   refused=refused)


def _dispatch(jobs: list[Job], out_dir: str | Path, executor: str, workers: int, progress=None) -> Iterator[dict]:
    """Results in completion order."""
    if not jobs:
        return iter(())
    if executor == "ray":
        return _ray(jobs, str(out_dir))
    if workers == 1:
        return _in_process(jobs, str(out_dir), progress)
    return _pool(jobs, str(out_dir), workers)


def _in_process(jobs: list[Job], out_dir: str, progress) -> Iterator[dict]:
    """One job after another in this process, with a bar inside the job: its id, step, loss and ETA."""
    from hubport.terminal import listening

    if progress is None:
        yield from (run_job(job, out_dir) for job in jobs)
        return
    bar = progress.add_task("", total=1, status="", visible=False)
    try:
        for job in jobs:
            total = job.spec.origin_steps if job.kind == "origin" else max(job.spec.budgets, default=0)
            name = f"  {'origin of ' if job.kind == 'origin' else ''}{job.spec.run_id}"
            progress.reset(bar, total=max(total, 1), description=name, status="", visible=total > 0)
            stride = max(1, total // 100)  # reading a GPU loss is a sync: at most 100 times a job

            def on_step(step, loss, stride=stride, total=total):
                if step % stride == 0 or step == total:
                    progress.update(bar, completed=step, status=f"loss {float(loss):.4f}")

            with listening(on_step):
                yield run_job(job, out_dir)
    finally:
        progress.remove_task(bar)


def _pool(jobs: list[Job], out_dir: str, workers: int) -> Iterator[dict]:
    """N local worker processes (spawned: no state shared with the driver), one thread budget each."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, int(jobs[0].spec.resources.cpus))
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_job, job, out_dir, threads): job for job in jobs}
        for future in as_completed(futures):
            yield _result(futures[future], future.result)


def _ray(jobs: list[Job], out_dir: str) -> Iterator[dict]:
    """One Ray task per job with the run's resources (fractional GPUs allowed); cancelled if we stop."""
    import ray

    remote = ray.remote(run_job)
    pending = {}
    for job in jobs:
        res = job.spec.resources
        ref = remote.options(num_cpus=res.cpus, num_gpus=res.gpus, max_retries=1).remote(
            job, out_dir, max(1, int(res.cpus)))
        pending[ref] = job
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            yield _result(job, functools.partial(ray.get, ready[0]))
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


def _result(job: Job, get) -> dict:
    """A worker's answer, or a failure record when the worker itself died (killed, out of memory)."""
    try:
        return get()
    except Exception as exc:
        return {"kind": job.kind, "key": job.spec.origin_plan_key, "record": failure(job.spec, exc)}


@contextlib.contextmanager
def _session(executor: str, address: str | None) -> Iterator[None]:
    """Connect to Ray when asked (an existing instance is reused as is; one we start is shut down after)."""
    if executor != "ray":
        yield
        return
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


@contextlib.contextmanager
def _progress(console) -> Iterator:
    from rich.progress import Progress

    from hubport.terminal import progress_columns

    with Progress(*progress_columns(), console=console) as progress:
        yield progress


def count(specs: Iterable[RunSpec]) -> dict[str, int]:
    """Runs per condition, for the plan printed before a grid starts."""
    out: dict[str, int] = {}
    for s in specs:
        out[s.condition] = out.get(s.condition, 0) + 1
    return out
