"""The ``netbudget`` command line (Typer)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from netbudget import __version__
from netbudget.exceptions import NetbudgetError

app = typer.Typer(
    name="netbudget",
    help="Compress a trained PyTorch network until it provably meets an operational budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"netbudget {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Compress a trained PyTorch network until it provably meets an operational budget."""


def _fail(error: Exception) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True)
    return typer.Exit(code=2)


@app.command()
def train(
    model: str = typer.Option("zoo:vgg", help="Zoo architecture, e.g. zoo:vgg, zoo:resnet20."),
    dataset: str = typer.Option("mnist5k", help="digits, mnist5k, fashion-mnist, an .npz file or an IDX directory."),
    epochs: int = typer.Option(None, help="Training epochs \\[default: per dataset]."),
    out: Path = typer.Option(..., help="Where to write the trained state dict (.pt)."),
    width: float = typer.Option(1.0, help="Channel width multiplier."),
    seed: int = typer.Option(0, help="Seed of the data split, initialisation and shuffling."),
    batch_size: int = typer.Option(128, help="Samples per optimiser step."),
    optimizer: str = typer.Option("sgd", help="sgd or adamw."),
    lr: float = typer.Option(None, help="Peak learning rate \\[default: 0.05 sgd, 2e-3 adamw]."),
) -> None:
    """Train a zoo network and save its weights."""
    from netbudget.data import load_dataset
    from netbudget.train import FitConfig, default_epochs, evaluate, fit
    from netbudget.zoo import build_for, save_checkpoint

    try:
        config = FitConfig(
            epochs=epochs or default_epochs(dataset),
            batch_size=batch_size,
            optimizer=optimizer,
            lr=lr,
            seed=seed,
        )
        data = load_dataset(dataset, seed=seed)
        net = build_for(model, data, width=width, seed=seed)
    except (NetbudgetError, KeyError) as error:
        raise _fail(error) from error
    console.print(
        f"Training [bold]{model}[/] on [bold]{data.name}[/] ({len(data.train)} train / "
        f"{len(data.val)} val / {len(data.test)} test) for {config.epochs} epochs"
    )
    result = fit(net, data, config)
    save_checkpoint(net, out)
    console.print(
        f"val top-1 {100 * evaluate(net, data.val):.2f} %  test top-1 {100 * evaluate(net, data.test):.2f} %  "
        f"({result.seconds:.0f} s, final loss {result.epoch_losses[-1]:.4f})"
    )
    console.print(f"saved {out}")


@app.command()
def measure(
    model: str = typer.Option("zoo:vgg", help="Zoo architecture, e.g. zoo:vgg."),
    weights: Path = typer.Option(None, help="State dict (.pt) to load; default: untrained weights."),
    dataset: str = typer.Option("mnist5k", help="Dataset that fixes the input shape and classes."),
    backend: str = typer.Option("onnxruntime", help="Latency backend: onnxruntime or torch."),
    batch_size: int = typer.Option(1, help="Samples per timed forward pass."),
    threads: int = typer.Option(1, help="Intra-op threads of the latency backend."),
    repeats: int = typer.Option(50, help="Timed runs."),
    warmup: int = typer.Option(10, help="Untimed runs before timing."),
    width: float = typer.Option(1.0, help="Channel width multiplier of the zoo network."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Measure every budget metric of a network: latency, packed size, MACs, params, peak memory."""
    import json

    from rich.table import Table

    from netbudget.constraints import format_value
    from netbudget.data import load_dataset
    from netbudget.metrics import LatencyConfig, MeasureContext, measure_all
    from netbudget.zoo import build_for, load_weights

    try:
        config = LatencyConfig(backend=backend, threads=threads, batch_size=batch_size, repeats=repeats, warmup=warmup)
        data = load_dataset(dataset)
        net = build_for(model, data, width=width)
        if weights is not None:
            load_weights(net, weights)
    except (NetbudgetError, KeyError) as error:
        raise _fail(error) from error
    values = measure_all(net, MeasureContext(input_shape=data.input_shape, latency=config))
    if as_json:
        print(json.dumps({"model": model, "backend": backend, "batch_size": batch_size, "threads": threads, **values}))
        return
    table = Table(title=f"{model} on {data.name} inputs {data.input_shape}, {backend}, batch {batch_size}, {threads} thread(s)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    per = "per batch" if batch_size > 1 else "per sample"
    for stat in ("", "median_", "p90_", "p99_", "max_"):
        label = f"latency {stat.rstrip('_') or 'mean'} ({per})"
        table.add_row(label, format_value(values[f"latency_{stat}ms"] * 1e-3, "s"))
    table.add_row("latency spread (CV)", f"{100 * values['latency_cv']:.1f} %")
    table.add_row("size (packed)", f"{format_value(values['size_bytes'], 'B')} ({values['size_bytes']:,.0f} B)")
    table.add_row("MACs", f"{values['macs']:,.0f}")
    table.add_row("MACs (non-zero weights)", f"{values['macs_sparse']:,.0f}")
    table.add_row("params", f"{values['params']:,.0f}")
    table.add_row("params (non-zero)", f"{values['params_sparse']:,.0f}")
    table.add_row(f"peak activation memory (batch {batch_size})", format_value(values["memory_bytes"], "B"))
    console.print(table)


def _summary_table(result) -> None:
    from rich.table import Table

    from netbudget.report import _before_after

    summary = result.summary
    table = Table(title=f"{summary['model']} on {summary['dataset']}: "
                        f"{'FEASIBLE' if result.feasible else 'INFEASIBLE'} after {summary['evaluations']} "
                        f"evaluations{_repairs_text(summary, ' and ')}, {summary['seconds']:.0f} s")
    for column in ("", "original", "compressed", "change"):
        table.add_column(column, justify="left" if column in ("", "change") else "right")
    for row in _before_after({}, summary):
        table.add_row(*row)
    console.print(table)


def _repairs_text(summary: dict, prefix: str) -> str:
    """``prefix`` + "1 repair" / "N repairs", or "" when the run made none."""
    n = len(summary.get("repairs") or [])
    return f"{prefix}{n} repair{'s' if n > 1 else ''}" if n else ""


def _finish_run(result) -> None:
    summary = result.summary
    _summary_table(result)
    run_dir = result.run_dir
    for text in summary.get("warnings") or []:  # also printed when the run started; repeated next to the verdict
        err_console.print(f"[bold yellow]warning:[/] {escape(text)}", soft_wrap=True)
    console.print(f"report: {run_dir / 'report' / 'report.html'}", soft_wrap=True)
    if result.feasible:
        console.print(f"model:  {run_dir / 'final' / 'model.pt'} (netbudget.load), model.onnx, model.nbz", soft_wrap=True)
    else:
        after = _repairs_text(summary, ", even after ")
        err_console.print(f"[bold red]The budget was not met on re-measurement{after}; no model was exported.[/]",
                          soft_wrap=True)
        if summary.get("advice"):
            err_console.print(escape(summary["advice"]), soft_wrap=True)
        raise typer.Exit(code=1)


def _run_guarded(action):
    """Run a compression; map errors to exit codes: 2 bad input, 1 run failed, 130 interrupted."""
    from netbudget.exceptions import UnreachableBudgetError

    try:
        return action()
    except UnreachableBudgetError as error:
        err_console.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(code=1) from error
    except (NetbudgetError, KeyError) as error:
        raise _fail(error) from error
    except KeyboardInterrupt as error:
        err_console.print("interrupted: completed trials are saved; continue with `netbudget resume RUN_DIR`.")
        raise typer.Exit(code=130) from error


@app.command()
def compress(
    config: Path = typer.Option(None, "--config", help="run.yaml with any settings; flags override it."),
    model: str = typer.Option(None, help="zoo:NAME (vgg, resnet20, mobilenetv2, densenet) or package.module:factory \\[default: zoo:vgg]."),
    weights: Path = typer.Option(None, help="Trained state dict (.pt); zoo networks without it are trained once and cached."),
    dataset: str = typer.Option(None, help="digits, mnist5k, fashion-mnist, an .npz file or an IDX directory \\[default: mnist5k]."),
    constraint: list[str] = typer.Option(None, "--constraint", "-c", help="Budget, repeatable: 'latency <= 0.5x', 'size <= 2 MB', 'latency.p99 <= 8 ms'."),
    steps: int = typer.Option(None, help="Cooling steps \\[default: 5]."),
    trials: int = typer.Option(None, help="Candidates evaluated per step \\[default: 12]."),
    last_trials: int = typer.Option(None, help="Candidates evaluated in the last of several steps \\[default: as --trials]."),
    split_seeds: bool = typer.Option(None, "--split-seeds/--no-split-seeds", help="Also start each step from channels-first and weights-first seeds when channels mix with prune/bits \\[default: on]."),
    operators: str = typer.Option(None, help="Comma-separated: channels,prune,bits \\[default: from the budgets]."),
    sampler: str = typer.Option(None, help="netbudget, penalty, uniform, random, sobol, tpe, optuna-gp \\[default: netbudget]."),
    cooling: str = typer.Option(None, help="auto, exponential, linear or one-step; auto: one-step when every budget is computed exactly (size, MACs, params), else exponential \\[default: auto]."),
    proxy: str = typer.Option(None, help="Candidate score: reference, bn, lookahead, agreement \\[default: lookahead]."),
    backend: str = typer.Option(None, help="Latency backend: onnxruntime or torch \\[default: onnxruntime]."),
    finetune_samples: int = typer.Option(None, help="Training samples per fine-tuning epoch, for a short fine-tuning budget (e.g. 5000) \\[default: all]."),
    final_epochs: int = typer.Option(None, help="Fine-tuning epochs of the final network \\[default: 3]."),
    final_tries: int = typer.Option(None, help="Final fine-tunes from the same weights, each with its own seed, merged by --final-merge \\[default: 2 with --finetune-samples, else 1]."),
    final_merge: str = typer.Option(None, help="With --final-tries above 1: soup (average the tries' weights) or best (keep the best on validation data) \\[default: soup]."),
    final_bn_batches: int = typer.Option(None, help="Batches of 128 training samples re-estimating the final network's batch-norm statistics after its fine-tune (0: off) \\[default: 40]."),
    min_keep: float = typer.Option(None, help="Smallest fraction of each layer's channels kept \\[default: 0.2]."),
    min_margin: float = typer.Option(None, help="Smallest safety margin below a latency bound, fraction \\[default: 0.04]."),
    round_to: int = typer.Option(None, help="Kept channel counts are rounded to this multiple \\[default: 8]."),
    moments: int = typer.Option(None, help="Moments the re-check and verification re-measure at (1: back to back) \\[default: 5]."),
    moment_seconds: float = typer.Option(None, help="Seconds between two moments \\[default: 10]."),
    repairs: int = typer.Option(None, help="Repairs (thin, fine-tune, verify again) of a result that misses a measured budget \\[default: 2]."),
    retimes: int = typer.Option(None, help="Re-timings at fresh moments of a re-check or repair try whose miss rests on one slow moment (0: every miss is final) \\[default: 1]."),
    step_thinning: int = typer.Option(None, help="Thinned variants a step tries when its best candidates miss on re-timing (0: take the next-ranked) \\[default: 4]."),
    project_misses: bool = typer.Option(None, "--project-misses/--no-project-misses", help="Score a proposal that misses a step's bound at the point where its line to the most compressed configuration meets it \\[default: off]."),
    project_slack: bool = typer.Option(None, "--project-slack/--no-project-slack", help="Score a proposal that meets a step's bounds with room to spare at the last point of its line to the original network that still meets them \\[default: on]."),
    floor_path: str = typer.Option(None, help="When the most compressed network misses the searched bound of a measured budget (channels only): uniform (each step takes the uniform configuration), once (the floor at once, fine-tuned for the whole budget) or search \\[default: uniform]."),
    uniform_guard: bool = typer.Option(None, "--uniform-guard/--no-uniform-guard", help="Ship the uniform path's network (every layer pruned alike at each step, as --sampler uniform) instead of the search's when the search's has no more MACs and no more parameters (channels only) \\[default: on]."),
    tie_tolerance: float = typer.Option(None, help="Proxy scores within this fraction of a step's best count as tied \\[default: 0.002]."),
    tie_break: str = typer.Option(None, help="Which tied candidate wins: usage (most of the step's budget used) or macs (most compute kept) \\[default: usage]."),
    last_step: str = typer.Option(None, help="Which network the last cooling step compresses: path (the previous step's winner) or original (searched afresh under the target, seeded with the path's network) \\[default: original]."),
    warm_start: bool = typer.Option(None, "--warm-start/--no-warm-start", help="Start the models of a last step searched from the original network from the first step's evaluations (same network, proxy and measurements) \\[default: off]."),
    run_dir: Path = typer.Option(Path("runs/latest"), help="Run directory (resumed if it holds this run)."),
    storage: str = typer.Option(None, help="Optuna storage URL \\[default: sqlite:///RUN_DIR/study.db]."),
    seed: int = typer.Option(None, help="Seed of the split, the sampler and fine-tuning \\[default: 0]."),
    quiet: bool = typer.Option(False, "--quiet", help="No live progress."),
) -> None:
    """Compress a network until it meets every budget; write the run directory and report."""
    from netbudget.pipeline.config import RunConfig
    from netbudget.pipeline.run import _Run

    def action():
        settings: dict = {}
        if config is not None:
            settings.update(RunConfig.read(config).to_dict())
        flags = {
            "model": model, "weights": str(weights.resolve()) if weights else None, "dataset": dataset,
            "constraints": list(constraint) if constraint else None, "steps": steps, "trials": trials,
            "last_trials": last_trials, "split_seeds": split_seeds,
            "operators": [o.strip() for o in operators.split(",") if o.strip()] if operators else None,
            "sampler": sampler, "cooling": cooling, "proxy": proxy, "backend": backend,
            "final_epochs": final_epochs, "final_tries": final_tries, "finetune_samples": finetune_samples, "final_bn_batches": final_bn_batches,
            "final_merge": final_merge, "min_keep": min_keep, "min_margin": min_margin, "round_to": round_to,
            "moments": moments, "moment_seconds": moment_seconds, "repairs": repairs, "retimes": retimes, "step_thinning": step_thinning,
            "project_misses": project_misses, "project_slack": project_slack, "floor_path": floor_path, "uniform_guard": uniform_guard,
            "tie_tolerance": tie_tolerance, "tie_break": tie_break, "last_step": last_step, "warm_start": warm_start, "storage": storage, "seed": seed,
        }
        settings.update({k: v for k, v in flags.items() if v is not None})
        if not settings.get("constraints"):
            raise InvalidArgumentError("No budget given: pass --constraint 'latency <= 0.5x' (repeatable) or --config run.yaml.")
        run_config = RunConfig.from_dict(settings)
        return _Run(run_dir, run_config, progress=not quiet).execute(None, None)

    from netbudget.exceptions import InvalidArgumentError

    _finish_run(_run_guarded(action))


@app.command()
def resume(
    run_dir: Path = typer.Argument(..., help="Run directory of an interrupted run."),
    quiet: bool = typer.Option(False, "--quiet", help="No live progress."),
) -> None:
    """Continue an interrupted run: completed trials and steps are never redone."""
    from netbudget.pipeline.run import resume as resume_run

    _finish_run(_run_guarded(lambda: resume_run(run_dir, progress=not quiet)))


@app.command()
def report(run_dir: Path = typer.Argument(..., help="Run directory.")) -> None:
    """Rebuild report/report.md and report/report.html from the run's storage."""
    from netbudget.report import build_report

    path = _run_guarded(lambda: build_report(run_dir))
    console.print(f"report: {path}", soft_wrap=True)


@app.command()
def demo(
    run_dir: Path = typer.Option(Path("runs/demo"), help="Run directory (a previous demo run there is replaced)."),
    seed: int = typer.Option(0, help="Seed of the data split, training and search."),
    quiet: bool = typer.Option(False, "--quiet", help="No live progress."),
) -> None:
    """Train (or load from cache) zoo:vgg on mnist5k, then compress it under latency <= 0.7x and size <= 0.25x."""
    import shutil

    from netbudget.pipeline.run import compress as run_compress
    from netbudget.train import default_epochs
    from netbudget.zoo import checkpoint_path, pretrained

    dataset, name = "mnist5k", "vgg"
    path = checkpoint_path(name, dataset, seed=seed, epochs=default_epochs(dataset))
    console.print(
        f"[bold]netbudget demo[/]: {name} on {dataset} ({'cached' if path.is_file() else 'training'}: {path})",
        soft_wrap=True,
    )
    pretrained(name, dataset, seed=seed)
    if (run_dir / "run.yaml").is_file():
        shutil.rmtree(run_dir)
    result = _run_guarded(lambda: run_compress(
        f"zoo:{name}", dataset, DEMO_CONSTRAINTS, run_dir=run_dir, progress=not quiet, seed=seed, **DEMO_SETTINGS
    ))
    _finish_run(result)


DEMO_CONSTRAINTS = ["latency <= 0.7x", "size <= 0.25x"]
DEMO_SETTINGS = {"steps": 3, "trials": 8, "final_epochs": 2}


def main() -> None:
    """Entry point of the ``netbudget`` script."""
    app()


if __name__ == "__main__":
    main()
