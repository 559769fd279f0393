"""The ``netbudget`` command line (Typer)."""

from __future__ import annotations

import time
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
    epochs: int = typer.Option(None, help="Training epochs [default: per dataset]."),
    out: Path = typer.Option(..., help="Where to write the trained state dict (.pt)."),
    width: float = typer.Option(1.0, help="Channel width multiplier."),
    seed: int = typer.Option(0, help="Seed of the data split, initialisation and shuffling."),
    batch_size: int = typer.Option(128, help="Samples per optimiser step."),
    optimizer: str = typer.Option("sgd", help="sgd or adamw."),
    lr: float = typer.Option(None, help="Peak learning rate [default: 0.05 sgd, 2e-3 adamw]."),
) -> None:
    """Train a zoo network and save its weights."""
    import torch

    from netbudget.data import load_dataset
    from netbudget.train import FitConfig, default_epochs, evaluate, fit
    from netbudget.zoo import build_model, save_checkpoint

    try:
        config = FitConfig(
            epochs=epochs or default_epochs(dataset),
            batch_size=batch_size,
            optimizer=optimizer,
            lr=lr,
            seed=seed,
        )
        data = load_dataset(dataset, seed=seed)
        torch.manual_seed(seed)
        net = build_model(
            model,
            in_channels=data.input_shape[0],
            num_classes=data.num_classes,
            input_size=data.input_shape[-1],
            width=width,
        )
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
    from netbudget.zoo import build_model, load_weights

    try:
        config = LatencyConfig(backend=backend, threads=threads, batch_size=batch_size, repeats=repeats, warmup=warmup)
        data = load_dataset(dataset)
        net = build_model(
            model, in_channels=data.input_shape[0], num_classes=data.num_classes,
            input_size=data.input_shape[-1], width=width,
        )
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


@app.command()
def demo(
    seed: int = typer.Option(0, help="Seed of the data split and training."),
) -> None:
    """Train (or load from cache) the demo network, zoo:vgg on mnist5k, and report its accuracy."""
    from netbudget.data import load_dataset
    from netbudget.metrics.macs import count_macs, count_params
    from netbudget.train import default_epochs, evaluate
    from netbudget.zoo import checkpoint_path, pretrained

    dataset, name = "mnist5k", "vgg"
    path = checkpoint_path(name, dataset, seed=seed, epochs=default_epochs(dataset))
    cached = path.is_file()
    console.print(
        f"[bold]netbudget demo[/]: {name} on {dataset} ({'cached' if cached else 'training'}: {path})", soft_wrap=True
    )
    start = time.perf_counter()
    model = pretrained(name, dataset, seed=seed)
    data = load_dataset(dataset, seed=seed)
    console.print(
        f"params {count_params(model):,}  MACs {count_macs(model, (1, *data.input_shape)):,}  "
        f"test top-1 {100 * evaluate(model, data.test):.2f} %  ({time.perf_counter() - start:.1f} s)"
    )


def main() -> None:
    """Entry point of the ``netbudget`` script."""
    app()


if __name__ == "__main__":
    main()
