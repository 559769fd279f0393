import io

from rich.console import Console

from netbudget.progress import ProgressBar


def test_progress_bar_shows_label_count_and_description() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=100)
    with ProgressBar("train", 3, console=console, done=1) as bar:
        bar.advance("epoch 2/3 loss 0.4000")
        bar._progress.refresh()
    text = stream.getvalue()
    assert "train" in text and "2/3" in text and "epoch 2/3 loss 0.4000" in text


def test_disabled_progress_bar_prints_nothing() -> None:
    stream = io.StringIO()
    with ProgressBar("train", 3, enabled=False, console=Console(file=stream, force_terminal=True)) as bar:
        bar.advance("ignored")
    assert stream.getvalue() == "" and bar._progress is None
