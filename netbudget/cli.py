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
    err_console.print(f"[bold red]error:[/] {escape(str(error))}")
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
    console.print(f"[bold]netbudget demo[/]: {name} on {dataset} ({'cached' if cached else 'training'}: {path})")
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
