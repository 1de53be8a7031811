"""The demo's six steps, each a method that prints what it does (see harness/demo/__main__.py)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

OWNER = "demo"
HOSTS = {"origin": f"{OWNER}/t5-tiny-origin", "receiving": f"{OWNER}/t5-tiny-receiving",
         "independent": f"{OWNER}/t5-tiny-independent"}   # pretrained apart: another lineage
DISTILL_STEPS = 300    # unlabelled steps of the demo's distilled port (bench_distill: ~100% of origin at 300)
TEMPLATE = "sentiment: {text}"
STUDY_REPO = f"{OWNER}/portability-study"
SHOWCASE = "lora"
MIN_ORIGIN_ACCURACY = 0.90
JOBS = min(2, os.cpu_count() or 1)  # two single-thread workers beat one two-thread process on tiny models


@dataclass
class Demo:
    out: Path
    config: Path
    port: int
    token: str
    fresh: bool = False
    console: Console = field(default_factory=Console)
    server: object | None = None
    local_hosts: object | None = None
    independent: Path | None = None
    grid: object | None = None
    report: Path | None = None
    results_url: str | None = None

    @property
    def study_dir(self) -> Path:
        return self.out / "study"

    def step(self, title: str) -> None:
        self.console.rule(f"[bold]{title}")

    def progress(self) -> Progress:
        return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TimeRemainingColumn(), console=self.console)

    def run(self) -> None:
        if self.fresh:
            shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir(parents=True, exist_ok=True)
        self.step("1/6  tiny hosts and demo data")
        data = self.build()
        self.step("2/6  the project's Hub server, on loopback")
        self.start_hub()
        self.step("3/6  originating modules, one per family")
        specs = self.specs(data)
        origins = self.train_origins(specs)
        self.step("4/6  hubport check + port by repo id, --push; across lineages: refused, then distilled")
        ported_repo, ported_dir = self.port_one(origins)
        self.port_across(origins, data)
        self.step("5/6  the study: harness run, analyze, report --push")
        self.study(specs, ported_repo, ported_dir)
        self.step("6/6  where everything is")
        self.where()

    def build(self) -> Path:
        from hubport.demo.hosts import INDEPENDENT_SEED, build_demo_hosts, demo_cache_dir, relative_difference
        from hubport.demo.task import write_demo_task

        with self.progress() as progress:
            self.local_hosts = build_demo_hosts(demo_cache_dir(), progress=progress)
            apart = build_demo_hosts(demo_cache_dir(), seed=INDEPENDENT_SEED, progress=progress)
        self.independent = apart.receiving
        data = write_demo_task(self.out / "data")
        self.console.print(f"hosts (cached by recipe {self.local_hosts.recipe_hash}): {self.local_hosts.origin.parent}")
        self.console.print(f"independent host (seed {INDEPENDENT_SEED}, recipe {apart.recipe_hash}): {self.independent}")
        self.console.print(f"demo task: {data}")
        diff = relative_difference(self.local_hosts.origin, self.local_hosts.receiving)
        table = Table("layer", "relative weight difference, receiving vs origin", title="how far apart the hosts are")
        for layer, value in diff.items():
            table.add_row(layer, f"{value:.3f}")
        self.console.print(table)
        return data

    def start_hub(self) -> None:
        from huggingface_hub import HfApi

        from hubport.server import spawn_server

        root = self.out / "hub"
        token_file = self.out / "hub-token"
        token_file.write_text(f"{self.token}\n")
        token_file.chmod(0o600)
        self.server = spawn_server(root, write_tokens=[self.token], port=self.port)
        self.console.print(f"Hub at {self.server.url} (root {root}; write token in {token_file})")
        api = HfApi()
        for name, repo in HOSTS.items():
            api.create_repo(repo, exist_ok=True)
            folder = self.independent if name == "independent" else getattr(self.local_hosts, name)
            commit = api.upload_folder(repo_id=repo, folder_path=str(folder), commit_message=f"demo {name} host")
            self.console.print(f"published {name} host as {repo} @ {commit.oid[:10]}")

    def specs(self, data: Path) -> list:
        from harness.grid.spec import expand, load_grid

        refs = {**HOSTS, "task": str(data)}
        self.grid = load_grid(self.config)
        return expand(self.grid, resolvers={"demo": lambda name: refs[name]})

    def train_origins(self, specs: list) -> dict[str, tuple[str, str]]:
        from harness.runs.run import ensure_origin
        from hubport.hub import push_module

        firsts = {}
        for spec in specs:
            firsts.setdefault(spec.family.name, spec)
        table = Table("family", "library", "accuracy on the originating host", "pushed as")
        out, low = {}, []
        for family, spec in firsts.items():
            self.console.print(f"training the originating {family} module ...")
            location, info = ensure_origin(spec, self.study_dir)
            repo = f"{OWNER}/{family}-origin"
            push_module(Path(location), repo)
            out[family] = (repo, location)
            ok = info["accuracy"] >= MIN_ORIGIN_ACCURACY
            low += [] if ok else [family]
            table.add_row(family, spec.family.library, f"[{'green' if ok else 'red'}]{info['accuracy']:.3f}", repo)
        self.console.print(table)
        if low:
            from hubport.errors import HubportError

            raise HubportError(f"originating modules below {MIN_ORIGIN_ACCURACY:.0%} on the demo task: {low}",
                               "the demo hosts did not let them learn the task, so nothing was ported")
        self.console.print(f"every originating module learns the task (>= {MIN_ORIGIN_ACCURACY:.0%}) "
                           "before any porting run")
        return out

    def port_one(self, origins: dict[str, tuple[str, str]]) -> tuple[str, Path]:
        from hubport import api
        from hubport.hub import push_module
        from hubport.render import check_report, port_summary

        source, target = origins[SHOWCASE][0], HOSTS["receiving"]
        self.console.print(f"$ hubport check {source} --to {target}")
        check_report(self.console, api.check(source, target))
        ported_repo, out = f"{OWNER}/{SHOWCASE}-on-receiving", self.out / "ported" / SHOWCASE
        command = f"hubport port {source} --to {target} --out {out} --push {ported_repo}"
        self.console.print(f"$ {command}")
        shutil.rmtree(out, ignore_errors=True)
        report = api.port(source, target, out, command=command)
        summary = report.to_dict()
        summary["pushed"] = push_module(out, ported_repo)
        port_summary(self.console, summary)  # ends with the pushed repo, commit and URL
        return ported_repo, out

    def port_across(self, origins: dict[str, tuple[str, str]], data: Path) -> None:
        """The same module onto the independently pretrained host: `check` finds no map and the copy is
        refused; `--map distill` carries it on the task's texts (labels not read)."""
        from hubport import api
        from hubport.errors import IncompatibleError
        from hubport.render import check_report, port_summary

        source, target = origins[SHOWCASE][0], HOSTS["independent"]
        self.console.print(f"$ hubport check {source} --to {target}")
        check_report(self.console, api.check(source, target))
        out = self.out / "ported" / f"{SHOWCASE}-independent"
        shutil.rmtree(out, ignore_errors=True)
        self.console.print(f"$ hubport port {source} --to {target} --out {out}")
        try:
            api.port(source, target, out, command="hubport port")
        except IncompatibleError as exc:
            self.console.print(f"[yellow]refused[/]: {exc.one_line()}", highlight=False)
        command = (f"hubport port {source} --to {target} --map distill --data {data / 'train.jsonl'} "
                   f"--distill-steps {DISTILL_STEPS} --out {out}")
        self.console.print(f"$ {command}")
        report = api.port(source, target, out, map="distill", command=command,
                          settings={"data": str(data / "train.jsonl"), "steps": DISTILL_STEPS, "template": TEMPLATE})
        port_summary(self.console, report.to_dict())

    def study(self, specs: list, ported_repo: str, ported_dir: Path) -> None:
        from harness.analysis.analyze import analyze_dir
        from harness.report.publish import model_index, push_results
        from harness.report.report import write_report
        from harness.runs.executors import run_grid
        from hubport.hub import push_module

        command = f"harness run {self.config.name} --out {self.study_dir}"
        self.console.print(f"$ {command}   ({len(specs)} runs)")
        summary = run_grid(specs, self.study_dir, config=self.grid.to_dict(), command=command, console=self.console,
                           jobs=JOBS)
        if summary.failed:
            self.console.print(f"[red]{summary.failed} runs failed[/]: see {self.study_dir / 'failed'}")
        self.console.print(f"$ harness analyze {self.study_dir} && harness report {self.study_dir} --push {STUDY_REPO}")
        analysis = analyze_dir(self.study_dir)
        self.report = write_report(self.study_dir, analysis)
        self.results_url = push_results(self.study_dir, STUDY_REPO)
        spec = next(s for s in specs if s.family.name == SHOWCASE)
        entries = model_index(analysis, family=SHOWCASE, pair=f"{spec.origin} -> {spec.receiving}",
                              data=f"{spec.origin_data} -> {spec.receiving_data}",
                              dataset_id="demo/task", dataset_name="generated demo sentiment task")
        push_module(ported_dir, ported_repo, results=entries)
        count = sum(len(item.get("results", [])) for item in entries)
        self.console.print(f"{ported_repo}'s card now carries {count} model-index results from the study")
        self.summarise(analysis)

    def summarise(self, analysis) -> None:
        verdicts = [c.verdict for c in analysis.comparisons if c.cell.budget == 0]
        for line in verdicts[:12]:
            self.console.print(f"  - {line}", highlight=False)

    def where(self) -> None:
        self.console.print(f"report:   {self.report}  (and report.html, figures/ beside it)")
        self.console.print(f"records:  {self.study_dir / 'runs'}   analysis: {self.study_dir / 'analysis.json'}")
        self.console.print(f"local Hub root: {self.out / 'hub'}; results dataset {STUDY_REPO} ({self.results_url}); "
                           f"ported module {OWNER}/{SHOWCASE}-on-receiving")
        self.console.print(f"reuse the Hub: hubport serve --root {self.out / 'hub'} --token-file "
                           f"{self.out / 'hub-token'} --port {self.port}   "
                           f"(then HF_ENDPOINT=http://127.0.0.1:{self.port} HF_HUB_DISABLE_XET=1)")

    def finish(self, keep_server: bool) -> None:
        if self.server is None:
            return
        if keep_server:
            self.console.print(f"the Hub server keeps running at {self.server.url}; stop it with Ctrl-C")
            return
        self.server.stop()
        self.console.print("Hub server stopped; nothing is left running")
