"""The ``urban-safety`` command line. Each command wraps plain functions from the packages."""

from __future__ import annotations

import contextlib
import functools
import os
import time
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from features.errors import UrbanSafetyError
from features.sources.formats import FORMATS
from urban_safety.settings import get_settings

app = typer.Typer(help="Urban safety risk: data, features, training and serving.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
data_app = typer.Typer(help="Generate, check and import raw data.", no_args_is_help=True)
features_app = typer.Typer(help="Build feature tables.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")

# Tables are wide: when output is not a terminal (CI logs, pipes) do not squeeze them to 80 columns.
console = Console(width=None if Console().is_terminal else 160)
err_console = Console(stderr=True, width=None if Console(stderr=True).is_terminal else 160)

SourceName = Enum("SourceName", {s: s for s in FORMATS}, type=str)


#: Usage reporting off unless the user turned it on: the service runs on a city's closed network.
TELEMETRY_DEFAULTS = {"BENTOML_DO_NOT_TRACK": "True", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def quiet_telemetry() -> None:
    """Turn BentoML's and MLflow's usage reporting off for this process and the ones it starts (the server,
    the MLflow UI), keeping any value the user set."""
    for name, value in TELEMETRY_DEFAULTS.items():
        os.environ.setdefault(name, value)


@app.callback()
def _entry() -> None:
    # Runs before every command, so before any command imports bentoml or mlflow.
    quiet_telemetry()


def _domain_names() -> list[str]:
    from features.registry import domains

    return list(domains())


def friendly_errors(fn):
    """Print an :class:`UrbanSafetyError` as one red line and exit 1, without a stack trace. Anything else
    (a bug, or bad data no check caught) is one line too, exit 2; URBAN_SAFETY_DEBUG=1 shows the trace."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UrbanSafetyError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except (typer.Exit, typer.Abort, typer.BadParameter, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("URBAN_SAFETY_DEBUG"):
                raise
            err_console.print(f"[bold red]error:[/] {fn.__name__.replace('_', ' ')} failed: {type(exc).__name__}: "
                              f"{escape(str(exc))} (URBAN_SAFETY_DEBUG=1 shows where)", highlight=False)
            raise typer.Exit(2) from None

    return wrapper


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                    transient=False)


@data_app.command("generate")
@friendly_errors
def data_generate(
    seed: Annotated[int | None, typer.Option(help="Random seed (default from settings: 42).")] = None,
    years: Annotated[int | None, typer.Option(min=1, max=20, help="Years of hourly data.")] = None,
    grid_m: Annotated[int | None, typer.Option(min=100, max=5000, help="Grid cell size in metres.")] = None,
) -> None:
    """Write the embedded data set (raw files in the real source formats, plus evaluation-only truth)."""
    from features.embedded import generate

    settings = get_settings(seed=seed, years=years, grid_m=grid_m)
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("generating", total=None)
        summary = generate(settings, progress=lambda msg: progress.update(task, description=msg))
        progress.update(task, description="done")
    skipped = summary.pop("skipped", {})
    table = Table("source", "files", "rows", title=f"Embedded data in {settings.raw_dir}")
    for source, info in summary.items():
        if "rows" in info:
            table.add_row(source, str(info["files"]), f"{info['rows']:,}")
        else:  # the truth files: {file name: rows}
            table.add_row(f"{source} (evaluation only)", str(len(info)), f"{sum(info.values()):,}")
    console.print(table)
    for source, why in skipped.items():
        console.print(f"not generated: {source}: {why}", highlight=False)
    console.print(f"generated in {time.perf_counter() - started:.1f} s")


def _print_reports(reports) -> bool:
    ok = True
    for rep in reports:
        ok &= rep.ok
        status = "[green]ok[/]" if rep.ok else "[bold red]BAD[/]"
        period = f"{rep.period[0]} .. {rep.period[1]}" if rep.period else "-"
        console.print(f"{status} {rep.file}: {rep.rows:,} rows, period {period}", highlight=False)
        if rep.container:
            how = ", ".join(x for x in (rep.container, rep.encoding, rep.layout and f"layout: {rep.layout}") if x)
            console.print(f"    read as {how}", highlight=False)
        if rep.columns:
            mapping = ", ".join(f"{key} <- {header}" for key, header in rep.columns.items())
            console.print(f"    columns: {mapping}", highlight=False)
        for note in rep.notes:
            console.print(f"    {note}", highlight=False)
        if rep.matched or rep.unmatched:
            console.print(f"    in the city config ({len(rep.matched)}): {', '.join(rep.matched) or '-'}; "
                          f"not in it ({len(rep.unmatched)}): {', '.join(rep.unmatched) or '-'}", highlight=False)
        if rep.entities and not (rep.matched or rep.unmatched):
            shown = ", ".join(rep.entities[:12]) + (" ..." if len(rep.entities) > 12 else "")
            console.print(f"    found ({len(rep.entities)}): {shown}", highlight=False)
        for problem in rep.problems:
            console.print(f"    [yellow]- {escape(problem)}[/]", highlight=False)
    return ok


@data_app.command("check")
@friendly_errors
def data_check(
    source: Annotated[SourceName, typer.Option(help="Which source format the files are in.")],
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Files to check.")],
) -> None:
    """Check downloaded files against a source format: rows, period, stations or districts, problems."""
    from features.sources.check import check_files

    # against the configured city: its stations, its 구 and its outline
    if not _print_reports(check_files(source.value, files, get_settings().city_config)):
        raise typer.Exit(1)


@data_app.command("import")
@friendly_errors
def data_import(
    source: Annotated[SourceName, typer.Option(help="Which source format the files are in.")],
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Files to import.")],
) -> None:
    """Validate files and make them the data the feature builders read for that source (all or nothing)."""
    from features.city import check_data_city, mark_data_city
    from features.sources.check import import_files

    settings = get_settings()
    check_data_city(settings.data, settings.city_config)  # never mix two cities' files in one folder
    if not _print_reports(import_files(source.value, files, settings.raw_dir, settings.city_config)):
        err_console.print("[bold red]nothing imported[/]: fix the files above and run again")
        raise typer.Exit(1)
    city = settings.city_config
    mark_data_city(settings.data, city)
    console.print(f"imported into {settings.raw_dir / source.value}; rebuild features to use them")
    from features.city_domains import readers_of, sources_of
    from features.registry import domains
    from features.sources.formats import PLACEMENT

    # The parcel and address layers serve the building register (they place its buildings).
    served = "buildings" if source.value in PLACEMENT else source.value
    if served not in sources_of(city):
        readers = readers_of(served)
        console.print(f"[yellow]note[/]: no domain {escape(city.name)} runs reads {served} (read by "
                      f"{', '.join(readers)}; the city config lists domains = {city.domains}): kept, not used",
                      highlight=False)
    # The generator's truth describes the generated data only: once a domain reads imported data, its
    # oracle would be scored against the wrong world, so that truth goes (training reports n/a).
    for name, spec in domains().items():
        stale = sorted(settings.truth_dir.glob(f"{name}_truth*.parquet")) if source.value in spec.sources else []
        for path in stale:
            path.unlink()
        if stale:
            console.print(f"removed the generated truth of {name} ({len(stale)} file(s)): its oracle is n/a now")


@features_app.command("build")
@friendly_errors
def features_build(
    domain: Annotated[str, typer.Option(help="A domain name or 'all'.")] = "all",
) -> None:
    """Build the feature table of one domain, or of every domain."""
    from features.build import build_features
    from features.sources import Sources

    settings = get_settings()
    chosen = _runnable(_chosen_domains(domain), settings, domain, need_table=False)
    sources = Sources.from_settings(settings)
    table = Table("domain", "rows", "unknown (left out)", "columns", "from", "to", "label sum/mean", "seconds",
                  title=f"Feature tables in {settings.features_dir}")
    with _progress() as progress:
        for spec in chosen:
            task = progress.add_task(f"building {spec.name}", total=None)
            res = build_features(spec, sources, settings.features_dir)
            progress.update(task, description=f"built {spec.name}")
            table.add_row(spec.name, f"{res.rows:,}", f"{res.unknown:,}", str(res.columns), f"{res.start:%Y-%m-%d %H:%M}",
                          f"{res.end:%Y-%m-%d %H:%M}",
                          f"{res.positives:,.3f}", f"{res.seconds:.1f}")
    console.print(table)


@app.command("domains")
def list_domains() -> None:
    """List the registered domains."""
    from features.registry import domains

    table = Table("domain", "task", "target", "keys", "horizon", "features", "feature set")
    for spec in domains().values():
        table.add_row(spec.name, spec.task, spec.target, ", ".join(spec.keys), str(spec.horizon),
                      str(len(spec.features)), spec.feature_set_version)
    console.print(table)


class ProfileName(StrEnum):
    quick = "quick"
    full = "full"


IMPORT_HINT = " (`urban-safety data import --source SOURCE FILE...`, or `urban-safety data generate` for the embedded city)"


def _runnable(chosen, settings, domain: str, need_table: bool):
    """The chosen domains this city runs and has data for; each one skipped is one line saying why (for a
    single named domain, that line is the error)."""
    from features.build import table_path
    from features.sources import missing_sources
    from features.store import exists as table_exists

    city = settings.city_config
    out = []
    for spec in chosen:
        spec = spec.for_city(city)  # a source the city has no station for is not needed
        reason = None
        if not city.runs(spec.name):
            reason = f"{city.name} does not run it (its city config lists domains = {city.domains})"
        elif need_table and not table_exists(table_path(settings.features_dir, spec.name)):
            missing = missing_sources(settings.raw_dir, spec.sources)
            reason = (f"no data: it needs {', '.join(missing)}{IMPORT_HINT}" if missing else
                      f"no feature table: run `urban-safety features build --domain {spec.name}`")
        elif not need_table and (missing := missing_sources(settings.raw_dir, spec.sources)):
            reason = f"no data: it needs {', '.join(missing)}{IMPORT_HINT}"
        if reason and domain != "all":
            raise UrbanSafetyError(f"{spec.name}: {reason}")
        if reason:
            console.print(f"[yellow]skipping {spec.name}[/]: {reason}", highlight=False)
        else:
            out.append(spec)
    return out


def _chosen_domains(domain: str):
    from features.registry import domains

    all_domains = domains()
    if domain != "all" and domain not in all_domains:
        raise typer.BadParameter(f"unknown domain {domain!r}; choose from: all, {', '.join(all_domains)}",
                                 param_hint="--domain")
    return list(all_domains.values()) if domain == "all" else [all_domains[domain]]


@app.command("train")
@friendly_errors
def train(
    domain: Annotated[str, typer.Option(help="A domain name or 'all'.")] = "all",
    trials: Annotated[int | None, typer.Option(min=1, help="Optuna trials per domain (profile default).")] = None,
    timeout: Annotated[float | None, typer.Option(min=1, help="Tuning time limit per domain, seconds.")] = None,
    profile: Annotated[ProfileName, typer.Option(help="quick: sampled rows, few trials; full: everything.")]
    = ProfileName.quick,
    missing_only: Annotated[bool, typer.Option("--missing-only", help="Skip domains that have a champion.")]
    = False,
    dask_workers: Annotated[int | None, typer.Option(min=1, help="Fit the final model on a local Dask cluster of "
                                                     "this many one-thread worker processes.")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Fit the final model on the running Dask cluster at this "
                                                  "scheduler address (e.g. tcp://10.0.0.5:8786).")] = None,
) -> None:
    """Tune LightGBM and XGBoost with Optuna, log to MLflow, register, and promote only a better model.

    With MLFLOW_TRACKING_URI a tracking server and URBAN_SAFETY_OPTUNA_STORAGE a PostgreSQL URL, several
    of these jobs (on one or many machines) tune one study together."""
    from training.champion import current_champion
    from training.tracking import configure
    from training.train import train_domain

    if dask_workers is not None and scheduler is not None:
        raise typer.BadParameter("give --dask-workers (a local cluster) or --scheduler (a running one), not both",
                                 param_hint="--scheduler")
    settings = get_settings()
    chosen = _runnable(_chosen_domains(domain), settings, domain, need_table=True)
    if not chosen:
        return
    if missing_only:
        client = configure(settings)
        # A champion of an older feature set cannot serve this code's features: it counts as missing.
        champions = {spec.name: current_champion(client, spec.name, settings.city_key) for spec in chosen}
        have = [spec.name for spec in chosen if champions[spec.name] is not None
                and champions[spec.name].tags.get("feature_set_version") == spec.feature_set_version]
        if have:
            console.print(f"champions of the current feature sets exist for {', '.join(have)}: not retraining them")
        chosen = [spec for spec in chosen if spec.name not in have]
        if not chosen:
            return
    table = Table("domain", "metric", "baseline", "model", "oracle", "gap closed", "family", "trials",
                  "seconds", "version", title=f"Training ({profile.value} profile)",
                  caption="version: the registered version; * = it is now the champion")
    results = []
    with _progress() as progress:
        for spec in chosen:
            task = progress.add_task(f"training {spec.name}", total=None)
            res = train_domain(spec, settings, profile.value, trials=trials, timeout=timeout,
                               dask_workers=dask_workers, scheduler=scheduler)
            progress.update(task, description=f"trained {spec.name}")
            results.append(res)
            s, m = res.scores, spec.primary_metric
            oracle = f"{s.oracle[m]:.4f}" if m in s.oracle else "n/a"
            gap = f"{s.gap_closed:.0%}" if s.gap_closed == s.gap_closed else "n/a"  # NaN: no truth
            table.add_row(spec.name, m, f"{s.baseline[m]:.4f}", f"{s.model[m]:.4f}", oracle, gap, res.family, f"{res.trials} ({res.pruned} pruned)",
                          f"{res.seconds:.0f}", f"v{res.decision.version}" + (" *" if res.decision.promoted else ""))
    console.print(table)
    for res in results:
        colour = "green" if res.decision.promoted else "yellow"
        console.print(f"[{colour}]{res.domain} v{res.decision.version}:[/] {res.decision.reason}", highlight=False)
        others = ", ".join(f"{k}={v:.4f}" for k, v in res.scores.model.items())
        console.print(f"    holdout: {others}", highlight=False)


@app.command("promote")
@friendly_errors
def promote_cmd(
    domain: Annotated[str, typer.Option(help="Domain name.")],
    version: Annotated[str, typer.Option(help="Registered model version to make champion.")],
    reason: Annotated[str, typer.Option(help="Why (recorded on the model version).")] = "manual promotion",
) -> None:
    """Make a registered version the champion by hand, recorded as a manual override."""
    from mlflow.exceptions import MlflowException

    from training.champion import promote
    from training.tracking import configure, registered_name

    spec = _chosen_domains(domain)[0]
    client = configure(get_settings())
    name = registered_name(spec.name)
    try:
        note = promote(client, spec.name, version, reason)
    except MlflowException as exc:
        err_console.print(f"[bold red]error:[/] {name} version {version}: {exc.message}")
        raise typer.Exit(1) from None
    console.print(f"[green]{name} v{version} is champion[/]: {note}", highlight=False)


@app.command("serve")
@friendly_errors
def serve(
    port: Annotated[int, typer.Option(envvar="URBAN_SAFETY_PORT", help="HTTP port.")] = 3000,
    host: Annotated[str, typer.Option(envvar="URBAN_SAFETY_HOST", help="Interface to listen on.")] = "127.0.0.1",
    prepare_only: Annotated[bool, typer.Option("--prepare-only", help="Import models and data, don't start.")]
    = False,
) -> None:
    """Import every champion and the data snapshot into BentoML's store, then start the service."""
    import os
    import sys

    from serving.model_store import ensure_references, import_champions, snapshot_sources

    settings = get_settings()
    with _progress() as progress:
        task = progress.add_task("importing champions from the MLflow registry", total=None)
        imported = import_champions(settings)
        progress.update(task, description="snapshotting the data the feature builders read")
        context = snapshot_sources(settings)
        progress.update(task, description="profiling the training tables for monitoring")
        ensure_references(settings)
        progress.update(task, description="models and data ready")
    for item in imported:
        colour = {"missing": "red", "imported": "green"}.get(item.status, "white")
        version = f" (registry v{item.registry_version})" if item.registry_version else ""
        console.print(f"[{colour}]{item.domain}: {item.status}[/] {item.tag or ''}{version}", highlight=False)
    console.print(f"data snapshot: {context}")
    if prepare_only:
        return
    # One worker per core: the service is CPU-bound Python (the default machine has 2 cores).
    os.environ.setdefault("URBAN_SAFETY_WORKERS", str(os.cpu_count() or 1))
    console.print(f"serving on http://{host}:{port} with {os.environ['URBAN_SAFETY_WORKERS']} workers "
                  "(dashboard: /dashboard, API docs: /)")
    cmd = [sys.executable, "-m", "bentoml", "serve", "serving.service:RiskService", "--host", host,
           "--port", str(port), "--working-dir", str(settings.root)]
    os.execv(sys.executable, cmd)


# What the observation store holds (hourly feeds and the quake events), and what an open API gives.
LiveSource = StrEnum("LiveSource", {s: s for s in ("asos", "aws", "airkorea", "tide", "nowcast", "quakes",
                                                   "quake_stations")})
FetchSource = StrEnum("FetchSource", {s: s for s in ("asos", "aws", "airkorea", "tide", "nowcast", "quakes")})


def _store(settings):
    from live.store import ObservationStore

    return ObservationStore.for_settings(settings)


def _print_batch(name: str, result) -> None:
    colour = "green" if not result.refused else "yellow"
    console.print(f"[{colour}]{escape(name)}[/]: {result.accepted} accepted, {result.duplicate} duplicate, "
                  f"{len(result.refused)} refused", highlight=False)
    for r in result.refused[:20]:
        where = f"row {r['row']}" if r.get("row") is not None else str(r.get("key"))
        console.print(f"  {where}: {escape(r['reason'])}", highlight=False)
    if len(result.refused) > 20:
        console.print(f"  ... and {len(result.refused) - 20} more", highlight=False)


@app.command("ingest")
@friendly_errors
def ingest(
    files: Annotated[list[Path] | None, typer.Argument(exists=True, dir_okay=False, help="Files to append.")] = None,
    source: Annotated[LiveSource | None, typer.Option(help="The source of FILES.")] = None,
    watch: Annotated[Path | None, typer.Option(help="An inbox folder: DIR/<source>/ files are taken once, then "
                                                    "moved to DIR/done/ or DIR/failed/ with the reason.")] = None,
    once: Annotated[bool, typer.Option("--once", help="With --watch: take what waits, then stop.")] = False,
    poll: Annotated[float, typer.Option(help="With --watch: seconds between looks at the inbox.")] = 1.0,
) -> None:
    """Append observations to the observation store (the running service takes them within seconds)."""
    from live.ingest import Inbox, ingest_file

    settings = get_settings()
    store = _store(settings)
    if watch is None:
        if not files or source is None:
            raise typer.BadParameter("give FILES with --source, or --watch DIR")
        for path in files:
            _print_batch(str(path), ingest_file(store, source.value, path, settings.city_config, "cli"))
        return
    inbox = Inbox(watch, store, settings.city_config)
    console.print(f"watching {watch} (sub-folders: {', '.join(s.value for s in LiveSource)}); Ctrl-C stops")
    while True:
        for path, result, reason in inbox.run_once():
            if result is None:
                err_console.print(f"[red]{escape(path.name)}[/]: failed, moved to {path.parent}: {escape(reason)}",
                                  highlight=False)
            else:
                _print_batch(path.name, result)
        if once:
            return
        time.sleep(poll)


@app.command("fetch")
@friendly_errors
def fetch_cmd(
    source: Annotated[FetchSource, typer.Option(help="Which open API to fetch from.")],
    since: Annotated[str | None, typer.Option(help="From this time (KST, e.g. 2024-07-17T09:00); default 3 h ago.")] = None,
    until: Annotated[str | None, typer.Option(help="Up to this time (KST); default now.")] = None,
) -> None:
    """Fetch observations from the source's open API (key from the environment) into the observation store."""
    import pandas as pd

    from live.fetch import fetch

    settings = get_settings()
    when = [pd.Timestamp(t).to_pydatetime() if t else None for t in (since, until)]
    got = fetch(source.value, settings.city_config, when[0], when[1])
    for note in got.notes:
        console.print(f"  {escape(note)}", highlight=False)
    from live.ingest import ingest_fetched

    result = ingest_fetched(_store(settings), source.value, got.frame, settings.city_config,
                            f"{source.value} open API")
    _print_batch(f"{source.value} ({got.requests} request(s), {got.pages} page(s))", result)


@app.command("live")
@friendly_errors
def live_cmd(
    inbox: Annotated[Path | None, typer.Option(help="Also take files dropped in this inbox folder.")] = None,
    fetch_sources: Annotated[list[FetchSource] | None, typer.Option("--fetch", help="Fetch these sources from their "
                                                                              "open APIs every interval.")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between scheduled cycles.")] = 600.0,
    poll: Annotated[float, typer.Option(help="Seconds between looks for new data (a cycle follows at once).")] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Run one cycle and stop.")] = False,
) -> None:
    """The live cycle: new data in, every cell of every domain re-scored, maps kept, alerts raised and pushed.
    Needs the models and data prepared by `urban-safety serve` (or `serve --prepare-only`)."""
    import logging

    from live.cycle import LiveLoop
    from live.db import database
    from live.ingest import Inbox
    from serving.engine import Engine
    from serving.model_store import load_context, load_models

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per look at the inbox
    sources, store, version = load_context()
    if store is None:
        raise UrbanSafetyError("the observation store of the data snapshot cannot be reached")
    models, problems = load_models()
    engine = Engine(sources, models, problems, store=store, version=version)
    loop = LiveLoop(engine, database(store.url), Inbox(inbox, store, sources.city) if inbox else None,
                    tuple(s.value for s in fetch_sources or ()), interval, poll)
    if once:
        from live.webhooks import deliver_pending

        report = loop.step(fetch=bool(fetch_sources), force=True)
        deliver_pending(loop.db)  # one round before stopping; what fails waits in the outbox for the next run
        console.print(f"cycle {report.id}: data time {report.data_time}, {report.seconds:.2f} s from new data to "
                      f"maps; {len(report.events)} alert event(s); skipped: {report.skipped or 'none'}")
        return
    console.print(f"live cycle every {interval:g} s (and within seconds of new data); Ctrl-C stops")
    with contextlib.suppress(KeyboardInterrupt):
        loop.run()


@app.command("monitor")
@friendly_errors
def monitor(
    hours: Annotated[float, typer.Option(help="Answers of the last HOURS of data time.")] = 24.0,
    out: Annotated[Path | None, typer.Option(help="The HTML report; default data/monitoring/report.html.")] = None,
    alert: Annotated[bool, typer.Option("--alert/--no-alert", help="Open or clear input-quality alerts.")] = True,
) -> None:
    """Compare the inputs and predictions the service answered with what it answered before at the same hours
    (or the training profile of the month): a table here, an HTML report with plots, and an input-quality
    alert per domain whose inputs are missing, out of range or silent (a moved distribution is a report line)."""
    from live.db import database, store_url
    from live.monitor import check, html_report, raise_alerts, references, served

    settings = get_settings()
    db = database(store_url(settings))
    report = check(db, hours)
    if not report:
        raise UrbanSafetyError("no monitoring reference: run `urban-safety serve` (it profiles the training tables)")
    table = Table("domain", "answered rows", "status", "prediction PSI", "problems")
    for name, r in report.items():
        table.add_row(name, str(r["rows"]), r["status"], str(r["prediction_psi"]), "\n".join(r["problems"]) or "-")
    console.print(table)
    path = out or settings.data / "monitoring" / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_report(report, references(db), {n: served(db, n, hours) for n in report}), encoding="utf-8")
    console.print(f"report: {path}")
    if alert:
        for event in raise_alerts(db, report):
            console.print(f"alert {event.alert_id} {event.kind}: {escape(event.alert['domain'])} inputs: "
                          f"{escape(event.alert['cause'] or 'clean again')}", highlight=False)


@app.command("ui")
@friendly_errors
def ui(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    mlflow_port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
    optuna_port: Annotated[int, typer.Option(help="Port of optuna-dashboard.")] = 8080,
) -> None:
    """Start the MLflow UI and optuna-dashboard on the project's stores, print their addresses, run until
    interrupted (Ctrl-C or SIGTERM stops both)."""
    import signal
    import sys

    from urban_safety import ui as uis

    settings = get_settings()
    planned = uis.plan(settings, host, mlflow_port, optuna_port)
    console.print(f"MLflow store: {settings.tracking_uri}\nOptuna storage: {settings.optuna_url}", highlight=False)
    # SIGTERM ends the command through ``finally`` (Python's default would leave both UIs running).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uis.prepare_stores(settings)
    procs = uis.start(planned)
    try:
        for item in planned:
            console.print(f"[green]{item.name}[/]: {item.url}", highlight=False)
        console.print("Ctrl-C stops both.")
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        err_console.print("[bold red]error:[/] a UI process exited", highlight=False)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        uis.stop(procs)


class HotspotRank(StrEnum):
    eclo = "eclo"
    count = "count"


class HotspotMethod(StrEnum):
    auto = "auto"
    model = "model"
    eb = "eb"
    excess = "excess"
    counts = "counts"
    counts_3y = "counts_3y"


class HotspotGroup(StrEnum):
    cell = "cell"
    dong = "dong"
    district = "district"


@app.command("hotspots")
@friendly_errors
def hotspots(
    start: Annotated[str | None, typer.Option("--from", help="First day of the period (YYYY-MM-DD, KST).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Day after the period's last day (YYYY-MM-DD).")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Read nothing dated on or after this day (default: "
                                              "the earlier of the day after the newest accident and --from).")] = None,
    top_n: Annotated[int, typer.Option("--top-n", min=1, max=1000, help="Units to list.")] = 100,
    by: Annotated[HotspotRank, typer.Option(help="Rank by expected ECLO or expected accidents.")] = HotspotRank.eclo,
    method: Annotated[HotspotMethod, typer.Option(help="auto: the one the city's back-test picks.")] = HotspotMethod.auto,
    group: Annotated[HotspotGroup, typer.Option(help="Rank cells, 동 or districts.")] = HotspotGroup.cell,
    report: Annotated[bool, typer.Option("--report", help="Write the monthly district report (the month --from "
                                         "starts, default the month after the newest accident) and its change "
                                         "against the last report in --out.")] = False,
    out: Annotated[Path, typer.Option(help="Folder for the CSV and GeoJSON (or the report).")] = Path("hotspots"),
) -> None:
    """Traffic hotspots of a period, forecast from the accident record before --as-of: cells (or 동, districts)
    ranked by expected ECLO or accidents, tiered low/medium/high on frequency, severity and scale, with
    each cell's dominant accident types; writes CSV and GeoJSON. Needs the accident records only."""
    import pandas as pd

    from features.domains.traffic import forecast as fc
    from features.errors import DataError
    from features.sources import Sources
    from features.store import atomic_path
    from serving import hotspot_report
    from serving import hotspots as sh

    def day(value: str | None, option: str) -> pd.Timestamp | None:
        if value is None:
            return None
        try:
            return pd.Timestamp(value).normalize()
        except ValueError:
            raise DataError(f"{option} {value!r} is not a date (YYYY-MM-DD)", column=option) from None

    flags = {"as_of": "--as-of", "period.from": "--from", "period.to": "--to", "period": "--from/--to"}

    def as_flags(exc: DataError) -> DataError:  # the question's fields by the flags that set them
        return DataError(exc.message, column=flags.get(exc.column, exc.column))

    sources = Sources.from_settings(get_settings())
    first, last = day(start, "--from"), day(end, "--to")
    if report:
        if first is None:
            first = fc.record_span(sources)[1] if sources.available("taas") else None
            first = None if first is None else first + pd.offsets.MonthBegin(0)
        if first is None:
            raise DataError("no traffic accident records: import TAAS files first", column="taas")
        try:
            path = hotspot_report.write(sources, first, out, day(as_of, "--as-of"), by.value, method.value)
        except DataError as exc:
            raise as_flags(exc) from None
        console.print(f"wrote {path} and {path.with_suffix('.csv')}", highlight=False)
        return
    if first is None or last is None:
        raise DataError("give --from and --to (or --report)", column="--from")
    try:
        result = sh.rank(sources, first, last, day(as_of, "--as-of"), by.value, method.value, group.value)
    except DataError as exc:
        raise as_flags(exc) from None
    explained = sh.explain(sources, result, top_n)
    table = Table(title=f"traffic hotspots {first:%Y-%m-%d} .. {last:%Y-%m-%d} by {by.value}, as of "
                        f"{result.as_of:%Y-%m-%d}, method {result.method} ({result.seconds:.1f} s)")
    key = "cell_id" if group is HotspotGroup.cell else group.value
    for col in ("rank", key, "district", "exp. accidents", "exp. ECLO", "obs. accidents", "frequency", "severity",
                "scale", "dominant type" if key == "cell_id" else "top cell"):
        table.add_column(col)
    for row in result.top(top_n).to_dict("records"):
        if key == "cell_id":
            dominant = (explained.get(row["cell_id"], {}).get("dominant") or {}).get("accident_type")
            last_col = dominant["value"] if dominant else "-"
        else:
            last_col = row["top_cell"]
        table.add_row(str(row["rank"]), str(row[key]), row["district"], f"{row['expected_accidents']:.1f}",
                      f"{row['expected_eclo']:.1f}", "-" if pd.isna(row["observed_accidents"]) else
                      f"{row['observed_accidents']:.0f}", row["expected_frequency_tier"], row["expected_severity_tier"],
                      row["expected_scale_tier"], last_col)
    console.print(table)
    console.print(f"method: {result.method} ({result.method_reason})", highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("hotspots.csv", sh.csv_text(result, top_n)),
                       ("hotspots.geojson", sh.geojson_text(result, sources.grid, top_n, explained))):
        with atomic_path(out / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
    console.print(f"wrote {out / 'hotspots.csv'} and {out / 'hotspots.geojson'}", highlight=False)


class RetrofitPopulation(StrEnum):
    mean = "mean"
    night = "night"
    day = "day"


class RetrofitRank(StrEnum):
    loss = "loss"
    casualties = "casualties"


def _krw(value: float) -> str:
    """KRW in 억원 (10^8) above 1억, else in 만원 (10^4): the units Korean budgets are read in."""
    return f"{value / 1e8:,.1f}억원" if abs(value) >= 1e8 else f"{value / 1e4:,.0f}만원"


class MagnitudeType(StrEnum):
    ML = "ML"
    Mw = "Mw"


class Population(StrEnum):
    day = "day"
    night = "night"


def _ready_scenario(city, name: str) -> tuple[dict, str]:
    """The city's ready earthquake scenario by label or 1-based number: (conditions, magnitude type)."""
    from features.domains.earthquake import SERVING

    ready = [(s.label, dict(s.conditions)) for s in city.scenarios.get("earthquake", [])] or list(SERVING.scenarios)
    for i, (label, conditions) in enumerate(ready, 1):
        if name in (label, str(i)):
            return conditions, str(conditions.pop("magnitude_type", "ML"))
    listed = "; ".join(f"{i}: {label}" for i, (label, _) in enumerate(ready, 1))
    raise UrbanSafetyError(f"--ready: no scenario {name!r} in {city.name}; ready: {listed}")


@app.command("scenario")
@friendly_errors
def scenario(
    ready: Annotated[str | None, typer.Option(help="A ready scenario of the city, by label or number.")] = None,
    magnitude: Annotated[float | None, typer.Option(help="Magnitude (of --magnitude-type).")] = None,
    lat: Annotated[float | None, typer.Option(help="Epicentre latitude (degrees N).")] = None,
    lon: Annotated[float | None, typer.Option(help="Epicentre longitude (degrees E).")] = None,
    depth: Annotated[float | None, typer.Option(help="Hypocentre depth (km); default 10.")] = None,
    magnitude_type: Annotated[MagnitudeType | None, typer.Option(
        help="ML (KMA's 규모, default) or Mw.")] = None,
    population: Annotated[Population, typer.Option(help="Whose people: night (02:00) or day (14:00).")] = Population.night,
    as_json: Annotated[bool, typer.Option("--json", help="The city totals and districts as JSON.")] = False,
) -> None:
    """An earthquake scenario's consequences for the city and each district, with 5-95% ranges: the numbers
    of POST /scenario (buildings by damage state, HAZUS direct loss, injuries, deaths, displaced)."""
    import json

    from features.domains.earthquake import SERVING, seismic
    from features.domains.earthquake import consequences as cq
    from features.sources import Sources

    sources = Sources.from_settings(get_settings())
    if ready is not None:
        if any(v is not None for v in (magnitude, lat, lon, depth)):
            raise UrbanSafetyError("give --ready or --magnitude/--lat/--lon/--depth, not both")
        conditions, kind = _ready_scenario(sources.city, ready)
        kind = magnitude_type.value if magnitude_type else kind
    else:
        given = {"magnitude": magnitude, "epicentre_lat": lat, "epicentre_lon": lon}
        missing = [f"--{k.removeprefix('epicentre_')}" for k, v in given.items() if v is None]
        if missing:
            raise UrbanSafetyError(f"give --ready NAME, or {', '.join(missing)} (and optionally --depth)")
        conditions = {**given, "depth_km": seismic.DEFAULT_DEPTH_KM if depth is None else depth}
        kind = magnitude_type.value if magnitude_type else "ML"
    conditions.setdefault("depth_km", seismic.DEFAULT_DEPTH_KM)
    flags = {"magnitude": "--magnitude", "epicentre_lat": "--lat", "epicentre_lon": "--lon", "depth_km": "--depth"}
    for c in SERVING.conditions:
        if c.name in flags and not c.minimum <= float(conditions[c.name]) <= c.maximum:
            raise UrbanSafetyError(f"{flags[c.name]} {conditions[c.name]:g}: outside {c.minimum:g}-{c.maximum:g} "
                                   f"{'(' + kind + ')' if c.name == 'magnitude' else c.unit}")
    SERVING.check(sources, conditions)
    result = cq.report(sources, conditions, kind, None, population.value)
    if as_json:
        city = result["city"]
        totals = {q: {"mean": city[q], **city["ranges"][q]} for q in ("deaths", "injuries", "displaced")}
        totals["loss_krw"] = {"mean": city["loss_krw"], **city["ranges"]["loss_krw"]}
        print(json.dumps({"city": sources.city.name, "conditions": conditions, "population": population.value,
                          **{k: result[k] for k in ("magnitude", "method", "max_pga_g")}, **totals,
                          "totals": city, "districts": result["districts"]}, ensure_ascii=False, indent=1))
        return
    m = result["magnitude"]
    table = Table(title=f"{sources.city.name}: {kind} {m['value']:g} (ML {m['ml']:.2f}, Mw {m['mw']:.2f}) at "
                        f"{conditions['epicentre_lat']:.3f} N {conditions['epicentre_lon']:.3f} E, "
                        f"{conditions['depth_km']:g} km, {population.value} population; mean [5-95% range]")
    for col in ("", "buildings", "moderate+", "complete", "loss", "injuries", "deaths", "displaced"):
        table.add_column(col, justify="right" if col else "left")

    def row(name: str, r: dict) -> None:
        rg = r["ranges"]

        def people(q: str) -> str:
            return f"{r[q]:,.0f} [{rg[q]['p05']:,.0f}-{rg[q]['p95']:,.0f}]"
        table.add_row(name, f"{r['buildings']:,}", f"{r['moderate_or_worse']:,.0f}",
                      f"{r['damage_states']['complete']:,.0f}",
                      f"{_krw(r['loss_krw'])} [{_krw(rg['loss_krw']['p05'])}-{_krw(rg['loss_krw']['p95'])}]",
                      people("injuries"), people("deaths"), people("displaced"))
    row("city", result["city"])
    for d in result["districts"]:
        row(d["district"], d)
    console.print(table)
    console.print("Means add up over districts; the ranges do not (each is its own 5-95%). Loss is HAZUS direct "
                  "building loss (structural, non-structural, contents).", highlight=False)


@app.command("retrofit")
@friendly_errors
def retrofit(
    scenarios: Annotated[int, typer.Option(min=4, max=20_000, help="Scenarios in the rate-weighted set.")] = 400,
    out: Annotated[Path, typer.Option(help="CSV of every building, ranked.")] = Path("retrofit_priorities.csv"),
    top: Annotated[int, typer.Option(min=1, max=100_000, help="Buildings in the printed list and the programme.")] = 20,
    by: Annotated[RetrofitRank, typer.Option(help="Rank by avoided annual loss or casualties.")] = RetrofitRank.loss,
    population: Annotated[RetrofitPopulation, typer.Option(
        help="Occupants: mean of day and night, or one of them.")] = RetrofitPopulation.mean,
) -> None:
    """Seismic retrofit priorities: the register's buildings ranked by the expected annual loss (KRW) and
    casualties that bringing each to the high-code level avoids, over Gutenberg-Richter-weighted scenarios."""
    from features.domains.earthquake import retrofit as rf
    from features.sources import Sources

    start = time.perf_counter()
    sources = Sources.from_settings(get_settings())
    scenario_set = rf.scenario_set(sources, scenarios)
    ranked = rf.priorities(sources, scenario_set, population.value, by.value)
    out.parent.mkdir(parents=True, exist_ok=True)
    ranked.to_csv(out, index=False)
    listed = ranked.head(top)
    table = Table(title=f"retrofit priorities by avoided {by.value} ({len(scenario_set):,} scenarios, "
                        f"{scenario_set['rate_per_year'].sum():.4f} quakes of ML {rf.quakes.SCENARIO_ML[0]}-"
                        f"{rf.quakes.SCENARIO_ML[1]} per year, {population.value} population)")
    for col in ("rank", "id", "address", "structure", "floors", "m²", "approved", "code", "class", "district",
                "avoided loss/yr", "avoided casualties/yr"):
        table.add_column(col)
    for r in listed.to_dict("records"):
        table.add_row(str(r["rank"]), str(r["building_id"]), str(r["address"] or ""), str(r["structure"]),
                      str(r["floors_above"]), f"{r['floor_area_m2']:,.0f}", str(r["approval_date"]), r["code_level"],
                      r["hazus_class"], r["district"], _krw(r["avoided_annual_loss_krw"]),
                      f"{r['avoided_annual_casualties']:.4f}")
    console.print(table)
    console.print(f"{len(ranked):,} buildings: expected annual loss {_krw(ranked['expected_annual_loss_krw'].sum())}, "
                  f"{ranked['expected_annual_casualties'].sum():.2f} casualties/yr; all retrofitted to high code "
                  f"avoids {_krw(ranked['avoided_annual_loss_krw'].sum())} and "
                  f"{ranked['avoided_annual_casualties'].sum():.2f} casualties/yr", highlight=False)
    avoided_loss, avoided_people = listed["avoided_annual_loss_krw"].sum(), listed["avoided_annual_casualties"].sum()
    line = f"top {len(listed):,}: avoids {_krw(avoided_loss)} and {avoided_people:.3f} casualties " \
           f"({listed['avoided_annual_deaths'].sum():.4f} deaths) per year"
    if "retrofit_cost_krw" in listed:
        cost = listed["retrofit_cost_krw"].sum()
        line += f"; programme cost {_krw(cost)} ({listed['floor_area_m2'].sum():,.0f} m² at " \
                f"{sources.city.earthquake_costs.retrofit_krw_per_m2:,.0f} KRW/m²)"
        if avoided_loss > 0:
            line += f", {cost / avoided_loss:,.0f} years of avoided loss"
    else:
        line += "; no retrofit cost configured (earthquake_costs.retrofit_krw_per_m2 in the city config)"
    console.print(line, highlight=False)
    console.print(f"wrote {out} in {time.perf_counter() - start:.1f} s", highlight=False)


if __name__ == "__main__":
    app()
