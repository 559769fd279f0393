"""The compression loop: cooled constrained search, step fine-tunes, verification, export.

One Optuna study per cooling step (``step-0`` ... ``step-{T-1}``) and one ``run`` study
whose attributes hold what the run measured once (the original network, the noise, the
schedule, the final summary), plus ``guard-0`` ... studies holding the uniform guard's timings,
share one storage, so a run resumes after any interruption
and ``netbudget report`` rebuilds everything from the storage alone.
"""

from __future__ import annotations

import copy
import functools
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from netbudget.compress.core import CompressedModel
from netbudget.compress.core import compress as apply_config
from netbudget.constraints import Constraint, format_value, parse_constraints
from netbudget.data import Dataset, load_dataset
from netbudget.exceptions import InvalidArgumentError, UnreachableBudgetError
from netbudget.metrics.latency import (
    LatencyConfig,
    describe_machine,
    machine_text,
    measure_latency,
)
from netbudget.metrics.registry import MeasureContext, measure
from netbudget.pipeline.config import RunConfig, default_operators
from netbudget.pipeline.cost import COMPUTABLE_KEYS, CostModel
from netbudget.progress import ProgressBar
from netbudget.proxy import ProxyConfig, reestimate_batchnorm_, score
from netbudget.search.bounds import Bound, measured, record_measurements
from netbudget.search.cooling import CoolingSchedule
from netbudget.search.registry import make_sampler
from netbudget.space import SearchSpace, build_space
from netbudget.train import FitConfig, average_weights, evaluate, fine_tune

__all__ = ["CompressionResult", "compress", "load", "open_storage", "resume"]

RUN_STUDY = "run"
CONFIRM_CANDIDATES = 5  # ranked trials re-timed before a step gives up and takes the best
CONFIRM_REPEATS = 7  # re-measurements whose median must meet the threshold
CONFIRM_SIGMAS = 2.0  # and median + 2 sd of them must meet the unmargined step bound
FINAL_TRY_SEED_STRIDE = 100_003  # a final try's seed offset: tries of one run never reuse another run seed's
FALLBACK_TRIES = 8  # uniform configurations tried past the seed when no candidate confirms
FALLBACK_STEP = 1 / 32  # their spacing along the uniform line (unit-cube position)
PROJECT_BISECTIONS = 5  # project_misses / project_slack: a proposal's line to the most / least compressed point, to 1/32
PROJECTED_ATTR = "projected_from"  # a projected trial's user attribute: the number of the trial it came from
# trials placed by the pipeline, not proposed by the sampler: project_slack leaves them where they are
SEEDED_ATTRS = frozenset({PROJECTED_ATTR, "thinned_from", "fallback", "seed", "split_seed", "path_seed"})
MOVED_ATTR = "moved_to_bound"  # project_slack: a proposal scored at the end of its line instead (not scored itself)
WARM_ATTR = "warm_from"  # a last step's copy of a first-step trial (``warm_start``): its number there
TIGHT_MARGINS = 2  # a measured bound within this many safety margins of the reachable floor is warned about
MODEL_FORMAT = "netbudget-model"


@dataclass
class CompressionResult:
    """What a compression run produced.

    Attributes:
        run_dir: the run directory (``run.yaml``, ``study.db``, ``steps/``, ``final/``, ``report/``).
        feasible: whether every budget held on independent re-measurement.
        model: the compressed network (``None`` when infeasible).
        summary: the content of ``final/summary.json``.
    """

    run_dir: Path
    feasible: bool
    model: nn.Module | None
    summary: dict[str, Any] = field(repr=False)

    def __repr__(self) -> str:
        acc = self.summary.get("accuracy", {})
        return (
            f"CompressionResult(feasible={self.feasible}, accuracy {acc.get('original', 0):.4f} -> "
            f"{acc.get('final', 0):.4f}, run_dir={str(self.run_dir)!r})"
        )


# -- public entry points -----------------------------------------------------------------
def compress(
    model: nn.Module | str,
    data: Dataset | str,
    constraints: Sequence[str] | str,
    *,
    run_dir: str | Path = "runs/latest",
    progress: bool = True,
    proxy: str | Callable[[nn.Module, nn.Module, Any], float] | None = None,
    **settings: Any,
) -> CompressionResult:
    """Compress ``model`` until it meets every budget in ``constraints``.

    Args:
        model: a trained network, or a spec ``zoo:NAME`` / ``package.module:factory``
            (then ``weights=`` in ``settings`` gives its state dict).
        data: a ``Dataset`` or a dataset name / path.
        constraints: budgets, e.g. ``["latency <= 0.5x", "size <= 0.25x"]``.
        run_dir: where the run is written; an existing run there is resumed.
        progress: show live progress.
        proxy: a built-in fidelity (``reference``, ``bn``, ``lookahead``, ``agreement``)
            or a callable ``(candidate, original, calibration) -> float`` of your own.
        **settings: any ``RunConfig`` field (``steps``, ``trials``, ``sampler``, ...).

    Returns:
        A ``CompressionResult``; ``feasible`` is False when the verified result misses a budget.

    Raises:
        InvalidConstraintError: a budget does not parse.
        UnreachableBudgetError: even the most compressed configuration misses a budget.
        InvalidArgumentError: another setting is out of range.
    """
    if isinstance(proxy, str):
        settings["proxy"], proxy = proxy, None
    spec = model if isinstance(model, str) else "python:object"
    dataset_name = data if isinstance(data, str) else data.name
    config = RunConfig(constraints=[constraints] if isinstance(constraints, str) else list(constraints),
                       model=spec, dataset=dataset_name, **settings)
    run = _Run(Path(run_dir), config, progress=progress, proxy=proxy)
    return run.execute(model if isinstance(model, nn.Module) else None, data if isinstance(data, Dataset) else None)


def resume(run_dir: str | Path, *, progress: bool = True, data: Dataset | None = None) -> CompressionResult:
    """Continue the run in ``run_dir`` after an interruption (completed trials are kept).

    Raises:
        InvalidArgumentError: ``run_dir`` holds no run.
    """
    run_dir = Path(run_dir)
    config = RunConfig.read(run_dir / "run.yaml", run=True)
    return _Run(run_dir, config, progress=progress).execute(None, data)


def load(path: str | Path) -> nn.Module:
    """Load a compressed network: ``final/model.pt``, a step's ``model.pt`` or a run directory."""
    path = Path(path)
    if path.is_dir():
        path = path / "final" / "model.pt"
    if not path.is_file():
        raise InvalidArgumentError(f"No compressed model at {path}.")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise InvalidArgumentError(f"{path} is not a netbudget model file (saved by `netbudget compress`).")
    return payload["module"].eval()


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage; SQLite URLs wait for locks instead of failing."""
    if url.startswith("sqlite:///"):
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.storages.get_storage(url)


# -- the run -------------------------------------------------------------------------------
class _Run:
    def __init__(self, run_dir: Path, config: RunConfig, *, progress: bool, proxy: Any = None) -> None:
        self.dir = run_dir
        self.config = config
        self.progress = progress
        self.user_proxy = proxy
        self.constraints: list[Constraint] = parse_constraints(config.constraints)
        # the budgets measured with noise (latency, user metrics): re-timed, margined, verified by a bound
        self.noisy: list[Constraint] = [c for c in self.constraints if not _exact(c)]
        self.started = time.perf_counter()
        # project_slack: whether the end of a step's lines (the step's own network, the same for
        # every proposal) misses the step's thresholds, by step study name: timed once per step
        self._slack_end_misses: dict[str, bool] = {}
        from rich.console import Console

        self.console = Console(stderr=True, quiet=not progress)

    # ---- setup
    def _model_and_data(self, model: nn.Module | None, data: Dataset | None) -> tuple[nn.Module, Dataset]:
        cfg = self.config
        if data is None:
            data = load_dataset(cfg.dataset, seed=cfg.seed)
        if len(data.train) == 0 or len(data.test) == 0:
            raise InvalidArgumentError(f"Dataset {cfg.dataset!r} has an empty train or test split.")
        saved = self.dir / "original.pt"
        if model is None and saved.is_file():
            model = load(saved)
        if model is None:
            from netbudget.models import build_from_spec

            model = build_from_spec(cfg.model, data, weights=cfg.weights, width=cfg.width, seed=cfg.seed)
        model = copy.deepcopy(model).eval()
        try:
            with torch.no_grad():
                out = model(data.test.x[:2])
        except Exception as error:
            raise InvalidArgumentError(
                f"The model cannot run on {cfg.dataset!r} inputs of shape {tuple(data.input_shape)}: {error}"
            ) from error
        if out.dim() != 2 or out.shape[1] != data.num_classes:
            raise InvalidArgumentError(
                f"The model outputs shape {tuple(out.shape)}, but {cfg.dataset!r} has {data.num_classes} classes."
            )
        if not saved.is_file():
            _save_model(model, saved, data, {})
        return model, data

    def execute(self, model: nn.Module | None, data: Dataset | None) -> CompressionResult:
        cfg = self.config
        self.dir.mkdir(parents=True, exist_ok=True)
        run_yaml = self.dir / "run.yaml"
        if run_yaml.is_file():
            previous = RunConfig.read(run_yaml, run=True)
            if cfg.storage is None:
                cfg.storage = previous.storage  # the default storage was resolved when the run started
            if previous.to_dict() != cfg.to_dict():
                changed = sorted(k for k, v in cfg.to_dict().items() if previous.to_dict().get(k) != v)
                raise InvalidArgumentError(
                    f"{self.dir} holds a run with different settings ({', '.join(changed)}); "
                    "use `netbudget resume` to continue it or choose another --run-dir."
                )
        self.original, self.data = self._model_and_data(model, data)
        cfg.storage = cfg.storage or f"sqlite:///{(self.dir / 'study.db').resolve()}"
        cfg.write(run_yaml)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.storage = open_storage(cfg.storage)
        self.meta = optuna.create_study(storage=self.storage, study_name=RUN_STUDY, load_if_exists=True)
        self.input_shape = tuple(self.data.input_shape)
        self.latency = LatencyConfig(backend=cfg.backend, threads=cfg.threads, batch_size=cfg.batch_size)
        self.context = MeasureContext(input_shape=self.input_shape, latency=self.latency, reference=self.original)
        elapsed_before = float(self.meta.user_attrs.get("elapsed", 0.0))

        self._measure_original()
        current = self.original
        self._floor = floor = self._at_floor()
        self._uniform_path = self.config.sampler == "uniform" or (floor is not None and floor["path"] == "uniform")
        if floor is not None and floor["path"] == "once":
            current = self._floor_network()
        else:
            for t in range(self._schedule.num_steps):
                current = self._run_step(t, current)
        result = self._finish(current)
        self.meta.set_user_attr("elapsed", elapsed_before + time.perf_counter() - self.started)
        return result

    # ---- original network, targets, noise, reachability
    def _measure_original(self) -> None:
        attrs = self.meta.user_attrs
        self._schedule = CoolingSchedule(
            kind=self.config.cooling, steps=self.config.steps, rate=self.config.cooling_rate
        )
        self.space0 = self._space(self.original, None)
        if "original" in attrs:
            self.original_values = attrs["original"]
            self.targets = attrs["targets"]
            self.margin = attrs["margin"]
            self._check_machine(attrs.get("machine"))
            return
        self.console.print(f"[bold]netbudget[/]: measuring the original network ({self.config.model})")
        values = self._measure(self.original, relative_to=None)
        targets: dict[str, float] = {}
        for c in self.constraints:
            targets[c.key] = c.resolve(values[c.key]).bound
        noise = 0.0
        if any(c.metric == "latency" for c in self.constraints):
            ratios = [
                measure_latency(self.original, self.input_shape, self.latency, reference=self.original).ratio
                for _ in range(5)
            ]
            noise = float(np.std(ratios, ddof=1) / np.mean(ratios))
        margin = max(self.config.safety_sigmas * noise, self.config.min_margin) if noise else 0.0
        self.original_values, self.targets, self.margin = values, targets, margin
        # fail fast: the most compressed configuration the space allows
        extreme = self._floor_network()
        reachable = self._measure(extreme, relative_to=values)
        # a miss, or a value close enough to be warned about, is confirmed by the median of
        # re-measurements: one timing can fall in a slow moment (demo: 0.514x once, 0.456x median
        # of 10; resnet20: 0.469x once, a tight-budget warning, where nine other runs measured 0.35-0.41x)
        close = [c for c in self.noisy if reachable[c.key] > _tight_line(
            targets[c.key], max(margin, self.config.min_margin))]
        if close:
            repeats = [self._measure(extreme, relative_to=values, constraints=close)
                       for _ in range(CONFIRM_REPEATS)]
            reachable.update({c.key: float(np.median([r[c.key] for r in repeats])) for c in close})
        # a miss those confirm is refused only if the floor misses over ``moments`` moments too:
        # one moment's median can be slow throughout (vgg latency <= 0.4x: 0.413x at one moment,
        # where 31 runs of the same budget measured the floor at 0.32-0.39x and met it)
        missed = [c for c in close if reachable[c.key] > targets[c.key]]
        spread = self._remeasure(extreme, missed)
        reachable.update({c.key: float(np.median([v for moment in spread[c.key] for v in moment])) for c in missed})
        for c in self.constraints:
            if reachable[c.key] > targets[c.key]:
                more = self._more_operators(c)
                advice = f"add operators (--operators {more}), " if more else ""
                over = f" over {self.config.moments} moments" if self.config.moments > 1 else ""
                raise UnreachableBudgetError(
                    f"Budget {c.text!r} cannot be met: the most compressed network this search allows "
                    f"(operators {', '.join(self.config.operators)}, at least {self.config.min_keep:.0%} of each "
                    f"layer's channels kept) reaches {format_value(reachable[c.key], c.unit)}"
                    f"{'' if _exact(c) else f' (median of {self.config.remeasurements} re-measurements{over})'} "
                    f"({reachable[c.key] / values[c.key]:.3f}x of the original {format_value(values[c.key], c.unit)}), "
                    f"above the bound {format_value(targets[c.key], c.unit)}. Relax the budget, {advice}"
                    "or lower --min-keep."
                )
        tight = self._tight_budgets(reachable, targets, values, margin)
        accuracy = evaluate(self.original, self.data.test)
        schedule = {c.key: self._schedule.thresholds(values[c.key], targets[c.key]) for c in self.constraints}
        self.meta.set_user_attr("noise", noise)
        self.meta.set_user_attr("reachable", reachable)
        self.meta.set_user_attr("warnings", tight)
        self.meta.set_user_attr("accuracy_original", accuracy)
        self.meta.set_user_attr("schedule", schedule)
        self.meta.set_user_attr("constraints", [c.text for c in self.constraints])
        self.meta.set_user_attr("keys", {c.text: c.key for c in self.constraints})
        self.meta.set_user_attr("units", {c.key: c.unit for c in self.constraints})
        self.meta.set_user_attr("extra_metrics", self._extra_metrics(self.original))
        self.meta.set_user_attr("targets", targets)
        self.meta.set_user_attr("margin", margin)
        self.meta.set_user_attr("machine", describe_machine())
        self.meta.set_user_attr("original", values)  # written last: its presence means "done"
        lines = [
            f"  {c.text}: original {format_value(values[c.key], c.unit)} -> bound {format_value(targets[c.key], c.unit)}"
            for c in self.constraints
        ]
        self.console.print("\n".join(lines) + f"\n  test top-1 {100 * accuracy:.2f} %"
                           + (f", latency noise {100 * noise:.1f} % (safety margin {100 * margin:.1f} %)" if noise else ""))

    def _check_machine(self, started: Mapping[str, Any] | None) -> None:
        """Warn, now and in the summary, when a run with a measured budget resumes on another CPU
        than the one it started on: its candidates were timed there, and latency ratios differ
        between CPUs. The re-check and verification time the result on this machine."""
        here = describe_machine()
        if not self.noisy or started is None or (started["cpu"], started["avx512"]) == (here["cpu"], here["avx512"]):
            return
        text = (f"This run started on another CPU ({machine_text(started)}) than it resumes on "
                f"({machine_text(here)}): latency ratios differ between CPUs, so what the earlier steps timed "
                "may not hold here. The re-check and verification time the result on this machine.")
        self.console.print(f"[bold yellow]warning[/]: {text}", soft_wrap=True)
        kept = list(self.meta.user_attrs.get("warnings", []))
        if text not in kept:
            self.meta.set_user_attr("warnings", [*kept, text])

    def _floor_network(self) -> nn.Module:
        """The most compressed network the search allows: every dimension at its largest value."""
        return apply_config(self.original, self.space0, self.space0.uniform(1.0)).module

    def _at_floor(self) -> dict[str, Any] | None:
        """``floor_path``: the record of a run whose floor misses the searched bound, else None.
        When channels are the run's only operator and its most compressed configuration
        missed, at the start, the last step's threshold of a measured budget, every search
        would end on that configuration (or, after a lucky timing, next to it): the run
        follows the uniform path to it (``uniform``) or takes it at once (``once``) instead
        of searching. Decided from the stored start measurements, so a resumed run decides
        alike."""
        cfg = self.config
        if cfg.floor_path == "search" or cfg.operators != ["channels"] or not self.noisy:
            return None
        reachable = self.meta.user_attrs["reachable"]
        last = self._search_thresholds(self.noisy)
        missed = {k: v for k, v in last.items() if reachable[k] > v}
        if not missed:
            return None
        epochs = cfg.final_epochs + (self._schedule.num_steps * cfg.step_epochs if cfg.floor_path == "once" else 0)
        record = {"path": cfg.floor_path, "reachable": {k: reachable[k] for k in missed}, "thresholds": missed,
                  "final_epochs": epochs}
        if "floor" not in self.meta.user_attrs:
            units = self.meta.user_attrs["units"]
            text = ", ".join(f"{k} {format_value(reachable[k], units[k])} against {format_value(v, units[k])}"
                             for k, v in missed.items())
            then = ("each step takes the uniform configuration that meets its threshold (every layer pruned "
                    "alike), without a search" if cfg.floor_path == "uniform" else
                    f"it is taken at once and fine-tuned for the whole budget ({epochs} epoch(s))")
            self.console.print(
                f"[bold]floor[/]: the most compressed network misses the search threshold (bound less the "
                f"safety margin: {text}); no search can end elsewhere, so {then}; --floor-path search searches anyway",
                soft_wrap=True)
            self.meta.set_user_attr("floor", record)
        return record

    def _more_operators(self, c: Constraint) -> str:
        """The ``--operators`` value that adds the operators suited to ``c``'s metric, or "" when
        the run has them all."""
        helpful = [op for op in default_operators([c.metric]) if op not in self.config.operators]
        return ",".join([*self.config.operators, *helpful]) if helpful else ""

    def _tight_budgets(self, reachable: Mapping[str, float], targets: Mapping[str, float],
                       values: Mapping[str, float], margin: float) -> list[str]:
        """Warnings, printed now and kept for the summary, for measured budgets whose bound lies
        within two safety margins (at least ``min_margin`` each) of the most compressed network:
        the search threshold (bound less one margin) leaves that network less than one margin of
        room, so a verification miss on a drifting machine has next to nothing to repair with
        (measured: vgg ``latency <= 0.4x``, a winner at the smallest widths could not be repaired)."""
        margin = max(margin, self.config.min_margin)  # a user metric is searched unmargined, but measured too
        out = []
        for c in self.constraints:
            if _exact(c) or reachable[c.key] <= _tight_line(targets[c.key], margin):
                continue
            more = self._more_operators(c)
            advice = f"more operators (--operators {more}), " if more else ""
            out.append(
                f"Budget {c.text!r} is tight: the most compressed network this search allows reaches "
                f"{format_value(reachable[c.key], c.unit)} ({reachable[c.key] / values[c.key]:.3f}x), within "
                f"{TIGHT_MARGINS} safety margins ({100 * TIGHT_MARGINS * margin:.1f} %) of the bound "
                f"{format_value(targets[c.key], c.unit)}; the search has little room, and a miss on "
                f"re-measurement little left to thin. A looser budget, {advice}or a lower --min-keep gives room."
            )
        for text in out:
            self.console.print(f"[bold yellow]warning[/]: {text}", soft_wrap=True)
        return out

    def _extra_metrics(self, module: nn.Module) -> dict[str, float]:
        ctx = self.context
        return {
            "macs": measure(module, "macs.dense", ctx).value,
            "params": measure(module, "params.dense", ctx).value,
            "params_sparse": measure(module, "params.sparse", ctx).value,
            "size_bytes": measure(module, "size", ctx).value,
        }

    def _measure(self, module: nn.Module, *, relative_to: Mapping[str, float] | None,
                 constraints: Sequence[Constraint] | None = None) -> dict[str, float]:
        """Every constrained metric of ``module`` (or those of ``constraints``) in base units.

        Latency is timed interleaved with the original network; with ``relative_to`` the
        value is ``ratio x original`` (immune to the machine's drift), else the raw value.
        """
        out: dict[str, float] = {}
        for c in self.constraints if constraints is None else constraints:
            m = measure(module, c, self.context)
            if c.metric == "latency" and relative_to is not None and m.ratio is not None:
                out[c.key] = m.ratio * relative_to[c.key]
            else:
                out[c.key] = m.value
        return out

    # ---- search space per step
    def _space(self, module: nn.Module, counts0: Mapping[str, int] | None,
               operators: Sequence[str] | None = None) -> SearchSpace:
        cfg = self.config
        space = build_space(module, self.input_shape, operators=list(operators or cfg.operators), policy=cfg.policy,
                            max_channel_ratio=0.99, round_to=cfg.round_to)
        counts0 = counts0 if counts0 is not None else space.channel_counts or {}
        dims = []
        for dim in space.dimensions:
            if dim.operator == "channels":
                highs = []
                for root in dim.targets:
                    now = (space.channel_counts or {})[root]
                    first = counts0.get(root, now)
                    highs.append(1.0 - cfg.min_keep * first / now)
                high = min(highs)
                if high <= 0 or all(
                    _kept(space, r, high) >= (space.channel_counts or {})[r] for r in dim.targets
                ):
                    continue  # nothing left to remove here
                dim = replace(dim, high=min(high, 0.99))
            dims.append(dim)
        if not dims:
            raise UnreachableBudgetError("Nothing in the network can be compressed further under --min-keep.")
        return SearchSpace(tuple(dims), space.input_shape, space.round_to, space.channel_counts)

    # ---- one cooling step
    def _thresholds(self, t: int) -> dict[str, float]:
        """Search thresholds of step ``t``: the schedule, with measured bounds lowered by the margin."""
        schedule = self.meta.user_attrs["schedule"]
        out = {}
        for c in self.constraints:
            value = schedule[c.key][t]
            if c.key not in COMPUTABLE_KEYS:
                value *= 1.0 - self.margin
            out[c.key] = value
        return out

    def _run_step(self, t: int, current: nn.Module) -> nn.Module:
        cfg = self.config
        path = self.dir / "steps" / str(t) / "model.pt"
        study = optuna.create_study(storage=self.storage, study_name=f"step-{t}", direction="maximize",
                                    load_if_exists=True)
        if study.user_attrs.get("done") and path.is_file():
            return load(path)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            # interrupted: retried below. A thinned variant or fallback point left waiting is
            # enqueued again where it is needed; left waiting, the next evaluation would run it
            # in place of the point enqueued then, under that point's record. A projection left
            # waiting (project_misses, project_slack) is dropped: the search proposes afresh.
            if trial.state == TrialState.RUNNING or {"thinned_from", "fallback", PROJECTED_ATTR} & trial.user_attrs.keys():
                self.storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        thresholds = self._thresholds(t)
        study.set_user_attr("step", t)
        study.set_user_attr("thresholds", thresholds)
        path_winner = None
        try:
            space = self._space(current, self.space0.channel_counts)
        except UnreachableBudgetError:  # an earlier step ended with every layer at --min-keep
            return self._step_at_floor(t, study, current, path)
        if self._from_original(t):  # the last step searches the original network; the path gives a seed
            path_winner, current = current, self.original
            study.set_user_attr("base", "original")
            space = self._space(current, self.space0.channel_counts)
        cost = CostModel(current, space) if any(c.key in COMPUTABLE_KEYS for c in self.constraints) else None
        bounds = [
            Bound(name=c.key, threshold=thresholds[c.key],
                  computable=_estimator(cost, c.key) if cost is not None and c.key in COMPUTABLE_KEYS else None)
            for c in self.constraints
        ]
        if path_winner is not None and cfg.warm_start:
            self._warm_start(study, space)
        seeds = self._seeds(study, current, space, cost, thresholds, path_winner)
        evaluated = _evaluated(study)
        held = evaluated + [x for x in study.get_trials(deepcopy=False) if x.state == TrialState.WAITING]
        for name, value, params in seeds:  # each seed once, again after an interruption that failed it
            if not any(x.user_attrs.get(name) == value for x in held):
                study.enqueue_trial(params, user_attrs={name: value}, skip_if_exists=False)
        budget = self._budget(t)
        remaining = budget - len(evaluated)
        description = ", ".join(
            f"{c.metric} <= {format_value(thresholds[c.key], c.unit)}" for c in self.constraints
        )
        base = " (from the original network)" if path_winner is not None else ""
        self.console.print(f"[bold]step {t + 1}/{self._schedule.num_steps}[/]{base}: {description}")
        study.sampler = self._sampler(space, bounds, t)
        objective = self._objective(current, space, thresholds)
        if remaining > 0:
            label = f"step {t + 1}/{self._schedule.num_steps}"
            with _StepProgress(self.console, label, budget, len(evaluated), self.progress) as bar, \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                for _ in range(budget):  # a proposal moved by project_slack takes none of the budget
                    study.optimize(objective, n_trials=remaining, callbacks=[bar.callback(thresholds)],
                                   gc_after_trial=False)
                    remaining = budget - len(_evaluated(study))
                    if remaining <= 0:
                        break
            for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                # a projection of the budget's last proposal: left waiting, the confirmation's
                # next evaluation would run it in place of the point enqueued there
                if PROJECTED_ATTR in trial.user_attrs:
                    self.storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        found = self._confirm(study, current, space, thresholds, objective)
        position = float(study.user_attrs.get("seed_u", 0.0))
        for _ in range(FALLBACK_TRIES):
            if found is not None or position >= 1.0:
                break
            # nothing meets the step's thresholds when re-timed: walk the uniform line further
            position = min(1.0, position + FALLBACK_STEP)
            self.console.print(f"  no candidate confirmed; trying the uniform configuration at {position:.3f}")
            found = self._fallback(study, current, space, thresholds, objective, position)
        if found is None:  # the least violating candidate; verification will say whether the run holds
            trial = _ranked(study, thresholds, cfg.tie_tolerance, cfg.tie_break)[0]
            candidate = apply_config(current, space, trial.params)
            _inherit_compression(candidate)
            found = trial, candidate, {**measured(trial), **study.user_attrs.get("confirmed", {}).get(str(trial.number), {})}
        winner, candidate, values = found
        # searched from the original network, the winner gets the fine-tuning the path's network had
        epochs = cfg.step_epochs * (t + 1) if path_winner is not None else cfg.step_epochs
        if epochs > 0:
            fine_tune(candidate, self.data.train, self._fit(epochs, seed=cfg.seed + 1000 + t),
                      teacher=self.original if cfg.distill else None, progress=self.progress)
        val = evaluate(candidate.module, self.data.val)
        study.set_user_attr("winner", winner.number)
        study.set_user_attr("winner_params", dict(winner.params))
        study.set_user_attr("winner_measured", values)
        study.set_user_attr("winner_feasible", _meets(values, thresholds))
        study.set_user_attr("val_after_finetune", val)
        _save_model(candidate.module, path, self.data, winner.params)
        study.set_user_attr("done", True)
        self.console.print(
            f"  winner #{winner.number} (proxy {100 * (winner.value or 0):.2f} %): "
            + ", ".join(f"{c.metric} {format_value(values[c.key], c.unit)}" for c in self.constraints)
            + f"; val top-1 after fine-tune {100 * val:.2f} %"
        )
        return candidate.module

    def _step_at_floor(self, t: int, study: optuna.Study, current: nn.Module, path: Path) -> nn.Module:
        """Step ``t`` when an earlier step's winner left nothing to compress (a tight budget's
        fallback walked the uniform line to its end): no search, the step's fine-tune only."""
        label = f"step {t + 1}/{self._schedule.num_steps}"
        self.console.print(f"[bold]{label}[/]: every layer is at --min-keep already: nothing to search")
        module = self._fine_tuned(current, self.config.step_epochs, seed=self.config.seed + 1000 + t,
                                  label=f"{label} fine-tune")
        study.set_user_attr("at_floor", True)
        study.set_user_attr("val_after_finetune", evaluate(module, self.data.val))
        _save_model(module, path, self.data, {})
        study.set_user_attr("done", True)
        return module

    def _confirm(self, study, current, space, thresholds, objective
                 ) -> tuple[FrozenTrial, CompressedModel, dict[str, float]] | None:
        """The winner: the best-ranked trial whose noisy measurements hold when re-timed.

        A winner chosen on one measurement sits on the bound about half the time; each
        measured (noisy) budget is re-measured ``CONFIRM_REPEATS`` times and the median must
        meet the step threshold. A candidate that misses is thinned along its own line
        (``_evaluate_thinner``, up to ``step_thinning`` per step) and the ranking starts
        again with the variant among the candidates; past that budget the next-ranked trial
        is tried. ``None`` when no candidate meets the thresholds.
        """
        while True:
            ranked = _ranked(study, thresholds, self.config.tie_tolerance, self.config.tie_break)
            for trial in ranked[:CONFIRM_CANDIDATES]:
                values = measured(trial)
                if not _meets(values, thresholds):
                    # ranked feasible-first: no feasible candidate is left, but a thinned
                    # variant that still misses can be thinned further
                    if self._thin_a_missing_variant(study, ranked[ranked.index(trial):], space, thresholds, objective):
                        break
                    return None
                candidate, values, over = self._retimed(study, trial, current, space, thresholds)
                if all(v <= 0 for v in over.values()):
                    return trial, candidate, values
                if self._evaluate_thinner(study, trial, space, values, thresholds, over, objective, retimed=True):
                    break  # rank again, the thinner variant among the candidates
            else:
                return None

    def _retimed(self, study, trial: FrozenTrial, current: nn.Module, space: SearchSpace,
                 thresholds: Mapping[str, float]) -> tuple[CompressedModel, dict[str, float], dict[str, float]]:
        """``trial``'s network, its values with every noisy budget re-measured
        ``CONFIRM_REPEATS`` times (the median; stored in the step's ``confirmed`` record, so a
        trial is re-timed once), and by how much each misses (base units; <= 0 holds): the
        median against the step threshold, and median + ``CONFIRM_SIGMAS`` sd against the
        unmargined bound (verification counts every re-measurement above it)."""
        noisy = self.noisy
        values = measured(trial)
        candidate = apply_config(current, space, trial.params)
        _inherit_compression(candidate)
        if not noisy:
            return candidate, values, {k: values.get(k, math.inf) - v for k, v in thresholds.items()}
        confirmed = dict(study.user_attrs.get("confirmed", {}))
        key = str(trial.number)
        if key not in confirmed:
            repeats = [self._measure(candidate.module, relative_to=self.original_values)
                       for _ in range(CONFIRM_REPEATS)]
            confirmed[key] = {c.key: float(np.median([r[c.key] for r in repeats])) for c in noisy}
            confirmed[key + ":sd"] = {c.key: float(np.std([r[c.key] for r in repeats], ddof=1)) for c in noisy}
            study.set_user_attr("confirmed", confirmed)
        values = {**values, **confirmed[key]}
        spread = confirmed.get(key + ":sd", {})
        over = {k: max(values[k] - thresholds[k],
                       values[k] + CONFIRM_SIGMAS * spread.get(k, 0.0) - thresholds[k] / (1.0 - self.margin))
                for k in confirmed[key]}
        return candidate, values, over

    def _fallback(self, study, current: nn.Module, space: SearchSpace, thresholds: Mapping[str, float], objective,
                  position: float) -> tuple[FrozenTrial, CompressedModel, dict[str, float]] | None:
        """The uniform configuration at ``position`` (unit cube), evaluated (once: a resumed
        step reuses it) and judged on its own when its single measurement meets the thresholds:
        it usually scores below the candidates that failed, so it would never enter the ranked
        window that ``_confirm`` re-times. ``None`` when it misses."""
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
                if t.user_attrs.get("fallback") == position]
        if not done:
            study.enqueue_trial(space.uniform(position), user_attrs={"fallback": position})
            study.optimize(objective, n_trials=1, gc_after_trial=False)
            done = [study.get_trials(deepcopy=False)[-1]]
        trial = done[-1]
        values = measured(trial)
        if trial.state != TrialState.COMPLETE or not _meets(values, thresholds):
            return None
        candidate, values, over = self._retimed(study, trial, current, space, thresholds)
        return (trial, candidate, values) if all(v <= 0 for v in over.values()) else None

    def _thin_a_missing_variant(self, study, infeasible: Sequence[FrozenTrial], space: SearchSpace,
                                thresholds: Mapping[str, float], objective) -> bool:
        """Thin the best-ranked of the ``infeasible`` trials that is itself a thinned variant
        (kept channel counts are rounded, so one thinning can fall short). False when none is
        left to thin."""
        for trial in infeasible:
            if "thinned_from" not in trial.user_attrs:
                continue
            values = measured(trial)
            over = {k: values.get(k, math.inf) - v for k, v in thresholds.items()}
            if all(math.isfinite(v) for v in over.values()) and self._evaluate_thinner(
                    study, trial, space, values, thresholds, over, objective, retimed=False):
                return True
        return False

    def _evaluate_thinner(self, study, trial: FrozenTrial, space: SearchSpace, values: Mapping[str, float],
                          thresholds: Mapping[str, float], over: Mapping[str, float], objective, *,
                          retimed: bool) -> bool:
        """Evaluate ``trial`` thinned along its own line, once per trial and up to
        ``step_thinning`` times per step: its channel dimensions move towards the most
        compressed network by the fraction of their remaining range that the re-timed miss
        ``over`` (base units, per budget key) needs by linear interpolation to the floor
        measured at the start, times 1.5, rounded up to ``FALLBACK_STEP``. The variant is an
        ordinary trial (proxy, one measurement). False when nothing was evaluated."""
        done = list(study.user_attrs.get("thinned", []))
        if len(done) >= self.config.step_thinning or any(d["from"] == trial.number for d in done):
            return False
        floor = self.meta.user_attrs.get("reachable", {})
        needed = max(
            (1.5 * gap / (values[k] - floor[k]) if k in floor and values[k] > floor[k] else 1.0)
            for k, gap in over.items() if gap > 0
        )
        position = min(1.0, FALLBACK_STEP * math.ceil(max(needed, FALLBACK_STEP) / FALLBACK_STEP - 1e-9))
        thinner = _thinner_params(space, trial.params, position)
        if thinner is None:
            return False  # every channel group is at its floor already
        params, position = thinner
        self.console.print(f"  candidate #{trial.number} misses ({self._miss_text(values, thresholds, over, retimed)}); "
                           f"trying it thinned by {position:.3f} of its remaining channel range")
        study.enqueue_trial(params, user_attrs={"thinned_from": trial.number, "thinned_by": position})
        study.optimize(objective, n_trials=1, gc_after_trial=False)
        last = study.get_trials(deepcopy=False)[-1]
        done.append({"from": trial.number, "trial": last.number, "position": position})
        study.set_user_attr("thinned", done)
        return True

    def _miss_text(self, values: Mapping[str, float], thresholds: Mapping[str, float], over: Mapping[str, float],
                   retimed: bool) -> str:
        """What a candidate missed, per budget: its value against the step threshold, or its
        re-timings' median + 2 sd against the unmargined bound."""
        parts = []
        for c in self.constraints:
            if over.get(c.key, 0) <= 0:
                continue
            if values[c.key] > thresholds[c.key]:
                parts.append(f"{c.metric} {format_value(values[c.key], c.unit)}"
                             f"{f' (median of {CONFIRM_REPEATS} re-measurements)' if retimed else ''} against "
                             f"{format_value(thresholds[c.key], c.unit)}")
            else:
                bound = thresholds[c.key] / (1.0 - self.margin)
                parts.append(f"{c.metric} median + {CONFIRM_SIGMAS:g} sd {format_value(bound + over[c.key], c.unit)} "
                             f"against the unmargined {format_value(bound, c.unit)}")
        return ", ".join(parts)

    def _fit(self, epochs: int, *, seed: int) -> FitConfig:
        return finetune_fit(epochs, lr=self.config.finetune_lr, samples=self.config.finetune_samples, seed=seed)

    def _sampler(self, space: SearchSpace, bounds: list[Bound], t: int):
        cfg = self.config
        options: dict[str, Any] = {}
        if cfg.sampler == "penalty":
            options["reference"] = {c.key: self.original_values[c.key] for c in self.constraints}
        if self._uniform_path:
            return optuna.samplers.RandomSampler(seed=cfg.seed + t)  # only the enqueued seed point runs
        return make_sampler(cfg.sampler, search_space=space.distributions(), bounds=bounds,
                            seed=cfg.seed * 1000 + t, n_startup_trials=cfg.num_startup, **options)

    def _objective(self, current: nn.Module, space: SearchSpace, thresholds: Mapping[str, float]):
        cfg = self.config
        proxy = self.user_proxy or ProxyConfig(fidelity=cfg.proxy, lookahead_steps=cfg.proxy_steps)
        distributions = space.distributions()

        def objective(trial: optuna.Trial) -> float:
            params = {
                name: trial.suggest_int(name, int(dist.low), int(dist.high))
                if isinstance(dist, optuna.distributions.IntDistribution)
                else trial.suggest_float(name, dist.low, dist.high)
                for name, dist in distributions.items()
            }
            candidate = apply_config(current, space, params)
            _inherit_compression(candidate)
            values = self._measure(candidate.module, relative_to=self.original_values)
            record_measurements(trial, values)
            trial.set_user_attr("macs", measure(candidate.module, "macs.dense", self.context).value)
            # only the search's own proposals: a projection, or a thinned variant / fallback point
            # of the confirmation (whose next evaluation must run the point it enqueues), is not
            if cfg.project_misses and not {PROJECTED_ATTR, "thinned_from", "fallback"} & trial.user_attrs.keys() \
                    and any(v > thresholds[k] for k, v in values.items()):
                self._project(trial, current, space, params, thresholds)
            # project_slack: only the sampler's own proposals (a seed or confirmation point is placed already)
            if cfg.project_slack and not SEEDED_ATTRS & trial.user_attrs.keys() \
                    and all(v <= thresholds[k] for k, v in values.items()) \
                    and self._project_slack(trial, current, space, params, thresholds):
                raise optuna.TrialPruned("moved towards the original network onto the step's thresholds")
            over = [k for k, v in values.items() if v > thresholds[k] * (1.0 + cfg.skip_margin)]
            if over:
                trial.set_user_attr("skipped", over)
                raise optuna.TrialPruned(f"misses {over} by more than {cfg.skip_margin:.0%}")
            start = time.perf_counter()
            value = score(candidate, self.original, self.data.calibration, proxy, seed=cfg.seed + trial.number)
            trial.set_user_attr("proxy_seconds", time.perf_counter() - start)
            return value

        return objective

    def _project(self, trial: optuna.Trial, current: nn.Module, space: SearchSpace,
                 params: Mapping[str, float], thresholds: Mapping[str, float]) -> None:
        """``project_misses``: enqueue, as the step's next trial, the first point on the line from
        ``params`` to the most compressed configuration that meets ``thresholds`` (bisection on
        measurements to 1/``2**PROJECT_BISECTIONS`` of the segment); nothing when even the
        end of the line misses."""
        start = space.encode(params)  # unit cube: 0 least, 1 most compressed

        def meets(u: float) -> bool:
            config = space.decode(start + u * (1.0 - start))
            values = self._measure(apply_config(current, space, config).module, relative_to=self.original_values)
            return all(v <= thresholds[k] for k, v in values.items())

        if not meets(1.0):
            return
        high = _bisect(meets, PROJECT_BISECTIONS)
        trial.study.enqueue_trial(space.decode(start + high * (1.0 - start)),
                                  user_attrs={PROJECTED_ATTR: trial.number}, skip_if_exists=True)

    def _project_slack(self, trial: optuna.Trial, current: nn.Module, space: SearchSpace,
                       params: Mapping[str, float], thresholds: Mapping[str, float]) -> bool:
        """``project_slack``: enqueue, as the step's next trial, the last point on the line from
        ``params`` (which meets ``thresholds``) to the least compressed configuration that still
        meets them (bisection on measurements to 1/``2**PROJECT_BISECTIONS`` of the segment) and
        mark ``trial`` moved (``MOVED_ATTR``); False, and nothing enqueued, where that point is
        ``params`` itself. The first measurement is one such step from ``params``: a proposal it
        finds at the bound costs that one measurement, one moved six (the end of the line, the
        step's own network, is timed once per step). A proposal moved before, or one whose
        point is a trial already, is scored where it is: the sampler, which sees no score at a
        moved proposal, can propose it again (a vgg run proposed one point ten times)."""
        study = trial.study
        held = [x for x in study.get_trials(deepcopy=False) if x.state != TrialState.FAIL and x.number != trial.number
                and not {"probe", WARM_ATTR} & x.user_attrs.keys()]  # scored, skipped, moved or waiting
        if any(MOVED_ATTR in x.user_attrs and x.params == dict(params) for x in held):
            return False
        start = space.encode(params)  # unit cube: 0 least, 1 most compressed

        def config_at(u: float) -> dict[str, float]:
            return space.decode(start * (1.0 - u))

        @functools.cache
        def misses(u: float) -> bool:
            if u == 1.0 and study.study_name in self._slack_end_misses:
                return self._slack_end_misses[study.study_name]
            values = self._measure(apply_config(current, space, config_at(u)).module, relative_to=self.original_values)
            out = any(v > thresholds[k] for k, v in values.items())
            if u == 1.0:
                self._slack_end_misses[study.study_name] = out
            return out

        step = 0.5 ** PROJECT_BISECTIONS
        if misses(step):  # most proposals sit within a step of the boundary: one measurement says so
            return False
        last = 1.0 if not misses(1.0) else _bisect(misses, PROJECT_BISECTIONS) - step
        config = config_at(last)
        if config == dict(params) or any(x.params == config for x in held):  # last >= step: misses(step) held
            return False
        trial.set_user_attr(MOVED_ATTR, last)
        study.enqueue_trial(config, user_attrs={PROJECTED_ATTR: trial.number}, skip_if_exists=False)
        return True

    def _budget(self, t: int) -> int:
        """Evaluated candidates of step ``t``: ``trials``, ``last_trials`` in the last of several
        steps, 1 on the uniform path."""
        cfg = self.config
        if self._uniform_path:
            return 1
        return cfg.last_trials if self._last_of_several(t) and cfg.last_trials is not None else cfg.trials

    def _last_of_several(self, t: int) -> bool:
        """Whether step ``t`` is the last of several cooling steps."""
        n = self._schedule.num_steps
        return n > 1 and t == n - 1

    def _warm_start(self, study: optuna.Study, space: SearchSpace) -> None:
        """``warm_start``: the first step's evaluations and bisection probes, copied once into the
        study of a last step that searches the original network (``WARM_ATTR``: their number in
        the first step). They configured the same network and were scored by the same proxy and
        measured alike, under a looser threshold: the last step's models start from them; they
        take none of its budget, and a scored one can win where it meets the step's thresholds."""
        copied = {x.user_attrs[WARM_ATTR] for x in study.get_trials(deepcopy=False) if WARM_ATTR in x.user_attrs}
        distributions = space.distributions()
        first = optuna.load_study(storage=self.storage, study_name="step-0")
        for x in first.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            if x.number in copied:  # before an interruption
                continue
            if set(x.params) != set(distributions) or "measured" not in x.user_attrs or not all(
                    distributions[k].low <= v <= distributions[k].high for k, v in x.params.items()):
                continue
            kept = {k: x.user_attrs[k] for k in ("measured", "macs", "skipped") if k in x.user_attrs}
            study.add_trial(optuna.trial.create_trial(
                params=dict(x.params), distributions=distributions, state=x.state,
                value=x.value if x.state == TrialState.COMPLETE else None,
                user_attrs={**kept, WARM_ATTR: x.number},
            ))

    def _from_original(self, t: int) -> bool:
        """Whether step ``t`` searches the original network (``last_step`` ``original``, the last
        of several steps, not on the uniform path)."""
        return self.config.last_step == "original" and self._last_of_several(t) and not self._uniform_path

    # ---- the seed points (bisection on measured values; probes are stored)
    def _seeds(self, study, current, space, cost, thresholds, path_winner: nn.Module | None = None
               ) -> list[tuple[str, Any, dict[str, float]]]:
        """The step's seed points as ``(trial attribute, its value, configuration)``: the uniform-ratio
        configuration (``seed``: every dimension at the smallest common position that meets
        the thresholds) and, with ``split_seeds`` where channels mix with weight operators,
        ``split_seed`` ``channels-first`` / ``weights-first``: that kind as little compressed
        as the thresholds allow with the other kind at its most, then the other kind as
        little as they allow. With ``path_winner`` (a last step searching the original
        network), ``path_seed``: the path's network as a configuration of the original
        (``_path_config``) moved towards the most compressed corner as little as the
        thresholds allow. Positions are stored (``seed_u``, ``seed_split``, ``seed_path``)
        for resume."""
        if "seed_u" not in study.user_attrs or (self._split_masks(space) and "seed_split" not in study.user_attrs) \
                or (path_winner is not None and "seed_path" not in study.user_attrs):
            self._bisect_seeds(study, current, space, cost, thresholds, path_winner)
        seeds = [("seed", True, space.uniform(study.user_attrs["seed_u"]))]
        for kind, position in study.user_attrs.get("seed_split", {}).items():
            config = space.decode(position)
            if all(config != other for _, _, other in seeds):
                seeds.append(("split_seed", kind, config))
        if "seed_path" in study.user_attrs:
            config = space.decode(study.user_attrs["seed_path"])
            if all(config != other for _, _, other in seeds):
                seeds.append(("path_seed", True, config))
        return seeds

    def _path_config(self, space: SearchSpace, winner: nn.Module) -> dict[str, float]:
        """The path's network ``winner`` as a configuration of the original network's ``space``:
        each channel dimension the fraction of its groups' original channels the path removed
        (mean over the groups it acts on), each weight dimension the most compressed value any
        earlier step's winner took (a weight pruned or quantised stays so); clipped to the bounds."""
        counts0 = space.channel_counts or {}
        counts = build_space(winner, self.input_shape, operators=["channels"], policy=self.config.policy,
                             max_channel_ratio=0.99, round_to=self.config.round_to).channel_counts or {}
        taken: dict[str, list[float]] = {}
        for t in range(self._schedule.num_steps - 1):
            study = optuna.load_study(storage=self.storage, study_name=f"step-{t}")
            for name, value in study.user_attrs.get("winner_params", {}).items():
                taken.setdefault(name, []).append(float(value))
        config = {}
        for dim in space.dimensions:
            if dim.operator == "channels":
                value = float(np.mean([1.0 - counts.get(r, counts0[r]) / counts0[r] for r in dim.targets]))
            elif dim.name in taken:
                value = min(taken[dim.name]) if dim.operator == "bits" else max(taken[dim.name])
            else:
                value = dim.least_compressed
            config[dim.name] = round(value) if dim.integer else value
            config[dim.name] = float(np.clip(config[dim.name], dim.low, dim.high))
        return config

    def _split_masks(self, space: SearchSpace) -> dict[str, np.ndarray]:
        """``{"channels-first": mask, "weights-first": mask}`` of the dimensions each split seed
        minimises first; empty when split seeds do not apply."""
        channels = np.array([d.operator == "channels" for d in space.dimensions])
        if not self.config.split_seeds or self.config.sampler == "uniform" or channels.all() or not channels.any():
            return {}
        return {"channels-first": channels, "weights-first": ~channels}

    def _bisect_seeds(self, study, current, space, cost, thresholds, path_winner: nn.Module | None = None) -> None:
        probes = {tuple(sorted(x.params.items())): measured(x)
                  for x in study.get_trials(deepcopy=False) if x.user_attrs.get("probe") is not None}

        def ok(position: np.ndarray, label: float | str) -> bool:
            config = space.decode(position)
            key = tuple(sorted(config.items()))
            if key not in probes:
                if all(c.key in COMPUTABLE_KEYS for c in self.constraints) and cost is not None:
                    values = {c.key: cost.estimate(config)[c.key] for c in self.constraints}
                else:
                    values = self._measure(apply_config(current, space, config).module, relative_to=self.original_values)
                study.add_trial(optuna.trial.create_trial(
                    params=config, distributions=space.distributions(), state=TrialState.PRUNED,
                    user_attrs={"probe": label, "measured": values},
                ))
                probes[key] = values
            return all(v <= thresholds[k] for k, v in probes[key].items())

        def smallest(line: Callable[[float], np.ndarray], label: str | None = None) -> float:
            """The smallest position along ``line`` (0..1) that meets the thresholds, to 1/128;
            1 where none does."""
            def at(u: float) -> bool:
                return ok(line(u), u if label is None else f"{label} {u:g}")

            if at(0.0):
                return 0.0
            if not at(1.0):
                return 1.0
            return _bisect(at, 7)  # bracket 1/128 of the range

        n = len(space)
        if "seed_u" not in study.user_attrs:
            study.set_user_attr("seed_u", smallest(lambda u: np.full(n, u)))
        split = {}
        for kind, first in self._split_masks(space).items():
            u_first = smallest(lambda u, m=first: np.where(m, u, 1.0), kind)
            u_then = smallest(lambda u, m=first, f=u_first: np.where(m, f, u), kind)
            split[kind] = np.where(first, u_first, u_then).tolist()
        if split:
            study.set_user_attr("seed_split", split)
        if path_winner is not None and "seed_path" not in study.user_attrs:
            row = space.encode(self._path_config(space, path_winner))
            u = smallest(lambda u: row + u * (1.0 - row), "path")
            study.set_user_attr("seed_path", (row + u * (1.0 - row)).tolist())

    # ---- re-check, final fine-tune, verification, export
    def _remeasure(self, module: nn.Module, constraints: Sequence[Constraint]) -> dict[str, list[list[float]]]:
        """``remeasurements`` independent measurements of each noisy budget, spread over
        ``moments`` moments ``moment_seconds`` apart: per budget key, the values of each moment
        (base units; a relative bound is judged as ratio x original, immune to a uniformly
        slower machine)."""
        cfg = self.config
        values: dict[str, list[list[float]]] = {c.key: [] for c in constraints}
        if not constraints:
            return values
        for i, group in enumerate(np.array_split(np.arange(cfg.remeasurements), cfg.moments)):
            if i > 0 and cfg.moment_seconds > 0:
                time.sleep(cfg.moment_seconds)
            for c in constraints:
                moment = []
                for _ in group:
                    m = measure(module, c, self.context)
                    moment.append(m.ratio * self.original_values[c.key] if (c.relative and m.ratio is not None)
                                  else m.value)
                values[c.key].append(moment)
        return values

    def _recheck(self, current: nn.Module) -> nn.Module:
        """The last step's winner re-measured at a later moment, before the final fine-tune.

        Latency ratios drift between moments by more than one confirmation's re-timings
        spread (measured over 60 ablation runs: sd 1.9 % against 0.1-0.7 %). So the winner
        must meet the search threshold (bound less the safety margin) again on every budget
        that verification re-measures (latency, user metrics), judged by the upper
        confidence bound of ``remeasurements`` timings over ``moments`` moments (as in
        verification); if it does not, its channels are thinned (``_thin_until_met``) and the
        final fine-tune recovers the accuracy. The outcome is stored, so a resumed run takes
        the same network without re-timing.
        """
        noisy = self.noisy
        if not noisy:
            return current
        record = self.meta.user_attrs.get("recheck")
        if record is None:
            chosen, tries, picked = self._thin_until_met(current, noisy, with_itself=True, label="re-check")
            record = {"position": picked["position"], "passed": picked["passed"], "tries": tries,
                      "thresholds": self._search_thresholds(noisy)}
            self.meta.set_user_attr("recheck", record)
            return chosen
        return current if record["position"] == 0 else self._thinned(current, record["position"])

    def _guarded(self, current: nn.Module) -> nn.Module:
        """``uniform_guard``: the re-checked winner ``current``, unless the network of the uniform
        path (what ``sampler='uniform'`` ends on: at each step, every layer pruned alike to the
        step's thresholds, bisected on measurements as a step's seed is; then re-checked as the
        winner was) has at least as many multiply-accumulates and parameters as it and more of
        one; then that network, trained as the uniform path trains it (each step's fine-tune,
        ``step_epochs`` with the step's seed). Widths depend on positions only, so the path is
        timed on networks not yet fine-tuned and trained only when it is shipped. The
        comparison is stored (``guard``: ``applied``; ``winner`` and ``uniform`` with ``macs``
        and ``params``; the uniform path's ``positions`` per step and its re-check's
        ``recheck_position``), so a resumed run takes the same network without re-timing.
        Skipped (no record) when channels are not the only operator or the run took a uniform path."""
        cfg = self.config
        if not cfg.uniform_guard or cfg.operators != ["channels"] or self._uniform_path:
            return current
        record = self.meta.user_attrs.get("guard")
        if record is None:
            uniform, positions = self.original, []
            for t in range(self._schedule.num_steps):
                try:
                    space = self._space(uniform, self.space0.channel_counts)
                except UnreachableBudgetError:
                    break  # every layer at --min-keep: the path ends here
                study = optuna.create_study(storage=self.storage, study_name=f"guard-{t}", load_if_exists=True)
                cost = CostModel(uniform, space) if any(c.key in COMPUTABLE_KEYS for c in self.constraints) else None
                self._bisect_seeds(study, uniform, space, cost, self._thresholds(t))
                positions.append(float(study.user_attrs["seed_u"]))
                uniform = self._uniform_step(uniform, space, positions[-1])
            thinned = 0.0
            if self.noisy:
                uniform, _, picked = self._thin_until_met(uniform, self.noisy, with_itself=True, label="guard re-check")
                thinned = picked["position"] if picked else 0.0
            ours, theirs = self._structure(current), self._structure(uniform)
            applied = dominated(ours, theirs)
            record = {"applied": applied, "winner": ours,
                      "uniform": {**theirs, "positions": positions, "recheck_position": thinned}}
            self.meta.set_user_attr("guard", record)
            self.console.print(
                f"[bold]guard[/]: the search's network has {_millions(ours['macs'])} MACs and {_thousands(ours['params'])} "
                f"parameters, the uniform path's network {_millions(theirs['macs'])} and {_thousands(theirs['params'])}: "
                + ("no more of either, so the uniform path's network goes on in its place (--no-uniform-guard keeps "
                   "the search's)" if applied else "the search's network goes on"), soft_wrap=True)
        if not record["applied"]:
            return current
        uniform, positions = self.original, record["uniform"]["positions"]
        for t, position in enumerate(positions):
            uniform = self._uniform_step(uniform, self._space(uniform, self.space0.channel_counts), position)
            uniform = self._fine_tuned(uniform, cfg.step_epochs, seed=cfg.seed + 1000 + t,
                                       label=f"guard: uniform step {t + 1}/{len(positions)} fine-tune")
        if record["uniform"]["recheck_position"] > 0:
            uniform = self._thinned(uniform, record["uniform"]["recheck_position"])
        return uniform

    def _structure(self, module: nn.Module) -> dict[str, float]:
        """``macs`` and ``params`` (dense counts) of ``module``: what the uniform guard compares."""
        return {"macs": measure(module, "macs.dense", self.context).value, "params": self._params(module)}

    def _params(self, module: nn.Module) -> float:
        """Dense parameter count of ``module`` (every weight counted, pruned or not)."""
        return measure(module, "params.dense", self.context).value

    def _uniform_step(self, module: nn.Module, space: SearchSpace, position: float) -> nn.Module:
        """``module`` with every dimension of ``space`` at ``position`` (other compression kept)."""
        candidate = apply_config(module, space, space.uniform(position))
        _inherit_compression(candidate)
        return candidate.module

    def _search_thresholds(self, noisy: Sequence[Constraint]) -> dict[str, float]:
        """The last step's threshold of each noisy budget: the target less the safety margin."""
        last = self._thresholds(self._schedule.num_steps - 1)
        return {c.key: last[c.key] for c in noisy}

    def _thin_until_met(self, module: nn.Module, noisy: Sequence[Constraint], *, with_itself: bool,
                        label: str) -> tuple[nn.Module, list[dict[str, Any]], dict[str, Any] | None]:
        """Re-measure ``module`` thinned along the uniform line by a growing share of its
        channels' remaining range (``_thinning_positions``: 1/32, 1/16, ... 1; ``with_itself``
        tries the network itself first) until the upper confidence bound of every noisy budget meets
        its search threshold. A try whose miss rests on one slow moment (``_one_slow_moment``) is
        re-timed at fresh moments, up to ``retimes`` times, and judged on them alone. When a share
        of 1/8 or more holds after half of it missed, the share halfway between is tried too (less
        thinning, more accuracy kept), unless it rounds to the same widths as the share that held.

        Each try records ``params_kept``, the fraction of ``module``'s dense parameters the
        thinned network keeps: 1.0 when a small share rounds every channel group back to its
        width (``round_to``), so the try timed the same network again.

        Returns the chosen network (the least thinned one that held, else the last tried), every
        try in order, and the chosen try (None when nothing could be thinned)."""
        thresholds = self._search_thresholds(noisy)
        tries: list[dict[str, Any]] = []
        chosen, picked = module, None
        over = f" over {self.config.moments} moments" if self.config.moments > 1 else ""
        params = self._params(module)

        def attempt(position: float, candidate: nn.Module | None = None) -> tuple[nn.Module, dict[str, Any]] | None:
            if candidate is None:
                candidate = module if position == 0 else self._thinned(module, position)
            if position > 0 and candidate is module:
                return None  # every layer is at --min-keep already: nothing left to thin
            # a small share can round every group back to its width: the same network, timed again
            kept = 1.0 if position == 0 else self._params(candidate) / params
            share = "every width kept: the same network" if kept >= 1.0 else f"{100 * kept:.0f} % of its parameters"
            what = "the winner" if position == 0 else f"the network thinned by {position:.3f} ({share})"
            for retime in range(self.config.retimes + 1):
                values = self._remeasure(candidate, noisy)
                upper = {k: _upper_confidence(v, self.config.confidence) for k, v in values.items()}
                passed = all(upper[k] <= v for k, v in thresholds.items())
                record = {"position": position, "params_kept": kept, "upper_confidence": upper, "passed": passed,
                          "moment_means": {k: [float(np.mean(m)) for m in v] for k, v in values.items()}}
                if retime:
                    record["retime"] = retime
                tries.append(record)
                text = ", ".join(f"{c.metric} {format_value(upper[c.key], c.unit)} (upper "
                                 f"{100 * self.config.confidence:.0f} % bound{over}) against "
                                 f"{format_value(thresholds[c.key], c.unit)}" for c in noisy)
                again = f" (re-timed {retime}/{self.config.retimes})" if retime else ""
                self.console.print(f"[bold]{label}[/] of {what}{again}: {text}: {'holds' if passed else 'misses'}")
                if passed or retime == self.config.retimes or not _one_slow_moment(values, thresholds,
                                                                                    self.config.confidence):
                    break
                self.console.print(f"{label}: the miss rests on one slow moment (without it the bound holds): "
                                   f"re-timing {what} at fresh moments")
            return candidate, record

        for position in _thinning_positions(with_itself):
            outcome = attempt(position)
            if outcome is None:
                break
            chosen, picked = outcome
            if picked["passed"]:
                if position >= 4 * FALLBACK_STEP:  # half of it missed: try halfway between
                    halfway = 0.75 * position
                    between_module = self._thinned(module, halfway)
                    # widths fall monotonically along the line: the same parameter count is the same network
                    if self._params(between_module) == self._params(chosen):
                        self.console.print(f"{label}: the share halfway back ({halfway:.3f}) keeps the same widths "
                                           f"as {position:.3f}: the same network, not timed again")
                    else:
                        between = attempt(halfway, between_module)
                        if between is not None and between[1]["passed"]:
                            chosen, picked = between
                break
        return chosen, tries, picked

    def _fine_tuned(self, module: nn.Module, epochs: int, *, seed: int, label: str, last: bool = False) -> nn.Module:
        """A copy of ``module`` fine-tuned for ``epochs`` (compression kept), in eval mode;
        ``last`` (the final network or a repair of it): its batch-norm statistics are then
        re-estimated from ``final_bn_batches`` batches of training samples."""
        candidate = CompressedModel(module=copy.deepcopy(module), config={})
        _inherit_compression(candidate)
        if epochs > 0:
            self.console.print(f"[bold]{label}[/]: {epochs} epoch(s)")
            fine_tune(candidate, self.data.train, self._fit(epochs, seed=seed),
                      teacher=self.original if self.config.distill else None, progress=self.progress)
            if last and self.config.final_bn_batches > 0:
                reestimate_batchnorm_(candidate.module, self.data.train, batches=self.config.final_bn_batches)
        return candidate.module.eval()

    def _final_fine_tune(self, module: nn.Module, epochs: int) -> tuple[nn.Module, list[dict[str, Any]]]:
        """``module`` fine-tuned ``final_tries`` times from the same weights, each try with its own
        seed (the first: the seed one fine-tune uses), merged as ``final_merge`` says: ``soup``,
        the tries' weights averaged (``_soup``); ``best``, the try with the best validation top-1
        (the earliest on a tie). Returns the result and one record per try, ``seed``,
        ``val_top1``, ``test_top1`` (fractions) and ``kept``, then for a soup one more with
        ``soup_of`` (the number of tries) in place of ``seed``. One try, or none to run
        (``epochs`` 0), records nothing."""
        cfg = self.config
        n = cfg.final_tries if epochs > 0 else 1
        if n == 1:
            return self._fine_tuned(module, epochs, seed=cfg.seed + 2000, label="final fine-tune", last=True), []
        tries, records = [], []
        for k in range(n):
            seed = cfg.seed + 2000 + FINAL_TRY_SEED_STRIDE * k
            tried = self._fine_tuned(module, epochs, seed=seed, label=f"final fine-tune {k + 1}/{n}", last=True)
            val = evaluate(tried, self.data.val)
            tries.append(tried)
            records.append({"seed": seed, "val_top1": val, "test_top1": evaluate(tried, self.data.test), "kept": False})
            self.console.print(f"final fine-tune {k + 1}/{n}: validation top-1 {100 * val:.2f} %")
        if cfg.final_merge == "soup":
            merged = self._soup(module, tries)
            val = evaluate(merged, self.data.val)
            records.append({"soup_of": n, "val_top1": val, "test_top1": evaluate(merged, self.data.test), "kept": True})
            self.console.print(f"soup of the {n} final fine-tunes (weights averaged): validation top-1 {100 * val:.2f} %")
            return merged, records
        best = max(range(n), key=lambda k: (records[k]["val_top1"], -k))
        records[best]["kept"] = True
        self.console.print(f"kept final fine-tune {best + 1}/{n} (best on validation data)")
        return tries[best], records

    def _soup(self, start: nn.Module, tries: list[nn.Module]) -> nn.Module:
        """The weight average of ``tries`` (fine-tunes of ``start``) with ``start``'s zeros and
        codebooks re-applied (an average of quantised weights leaves their levels) and its
        batch-norm statistics re-estimated (``final_bn_batches`` batches, its default when that is 0)."""
        merged = average_weights(tries)
        compression = CompressedModel(module=start, config={})
        _inherit_compression(compression)
        compression.enforce_(merged)
        reestimate_batchnorm_(merged, self.data.train, batches=self.config.final_bn_batches or RunConfig.final_bn_batches)
        return merged.eval()

    def _verify(self, module: nn.Module) -> tuple[list[dict[str, Any]], bool]:
        """Independent re-measurement of every budget: one row per constraint, and whether all hold."""
        cfg = self.config
        noisy = self.noisy
        if noisy:
            spread = (f" over {cfg.moments} moments {cfg.moment_seconds:g} s apart" if cfg.moments > 1 else "")
            self.console.print(f"[bold]verification[/]: {cfg.remeasurements} independent re-measurements per "
                               f"measured budget{spread}")
        measured_values = self._remeasure(module, noisy)
        rows, feasible = [], True
        for c in self.constraints:
            original = self.original_values[c.key]
            bound = self.targets[c.key]
            moments = measured_values.get(c.key) or [[measure(module, c, self.context).value]]
            values = [v for moment in moments for v in moment]
            violations = sum(v > bound for v in values)
            upper = _upper_confidence(moments, cfg.confidence)
            ok = upper <= bound
            feasible &= ok
            final = float(np.median(values))
            rows.append({
                "text": c.text, "key": c.key, "bound": bound, "unit": c.unit, "original": original,
                "final": final, "ratio": final / original, "violations": int(violations),
                "remeasurements": len(values), "max": float(max(values)), "upper_confidence": upper,
                "moment_means": [float(np.mean(m)) for m in moments], "satisfied": ok,
            })
        return rows, bool(feasible)

    def _repaired(self, module: nn.Module, rows: list[dict[str, Any]], feasible: bool
                  ) -> tuple[nn.Module, list[dict[str, Any]], bool, list[dict[str, Any]]]:
        """When verification misses a measured budget (the machine drifted past the safety
        margin), up to ``repairs`` times: thin the channels until a fresh re-measurement meets
        the search threshold again, fine-tune ``step_epochs``, and verify anew. Returns the
        last verified network, its rows, its verdict and one record per repair."""
        cfg = self.config
        noisy = self.noisy
        records: list[dict[str, Any]] = []
        while not feasible and len(records) < cfg.repairs:
            missed = [r for r in rows if not r["satisfied"]]
            if any(r["key"] not in {c.key for c in noisy} for r in missed):
                break  # an exact budget cannot drift: thinning is not the answer
            n = len(records) + 1
            text = ", ".join(f"{r['text']} (upper bound {format_value(r['upper_confidence'], r['unit'])} "
                             f"against {format_value(r['bound'], r['unit'])})" for r in missed)
            self.console.print(f"[bold]verification[/] missed {text}: repair {n}/{cfg.repairs}: thinning the "
                               f"channels, then {cfg.step_epochs} epoch(s) of fine-tuning")
            thinned, tries, picked = self._thin_until_met(module, noisy, with_itself=False, label=f"repair {n}")
            passed = picked is not None and picked["passed"]
            record = {"missed": {r["key"]: r["upper_confidence"] for r in missed}, "tries": tries,
                      "position": picked["position"] if picked else None, "passed": passed}
            if not passed:
                why = ("every layer is at --min-keep already: nothing left to thin" if not tries
                       else "no thinner network meets the search threshold")
                self.console.print(f"repair {n}: {why}; giving up")
                records.append(record)
                break
            module = self._fine_tuned(thinned, cfg.step_epochs, seed=cfg.seed + 3000 + n, label=f"repair {n} fine-tune",
                                      last=True)
            rows, feasible = self._verify(module)
            records.append({**record, "feasible": feasible})
        return module, rows, feasible, records

    def _thinned(self, module: nn.Module, position: float) -> nn.Module:
        """``module`` with every channel group thinned to ``position`` of its remaining range
        (other compression kept); ``module`` itself when nothing can be thinned further."""
        try:
            space = self._space(module, self.space0.channel_counts, operators=["channels"])
        except UnreachableBudgetError:
            return module
        candidate = apply_config(module, space, space.uniform(position))
        _inherit_compression(candidate)
        return candidate.module

    # ---- final fine-tune, verification, export
    def _finish(self, current: nn.Module) -> CompressionResult:
        cfg = self.config
        final_dir = self.dir / "final"
        summary_path = final_dir / "summary.json"
        if "summary" in self.meta.user_attrs and summary_path.is_file():
            import json

            summary = json.loads(summary_path.read_text())
            module = load(final_dir / "model.pt") if summary["feasible"] else None
            return CompressionResult(self.dir, summary["feasible"], module, summary)
        floor = self._floor
        once = floor is not None and floor["path"] == "once"
        if not once:  # taken at once, the floor has nothing to thin: verification decides
            current = self._recheck(current)
            current = self._guarded(current)
        epochs = floor["final_epochs"] if floor is not None else cfg.final_epochs
        module, tries = self._final_fine_tune(current, epochs)
        rows, feasible = self._verify(module)
        module, rows, feasible, repairs = self._repaired(module, rows, feasible)
        accuracy = {"original": self.meta.user_attrs["accuracy_original"], "final": evaluate(module, self.data.test)}
        evaluations = 0
        steps = []
        for t in range(0 if once else self._schedule.num_steps):
            study = optuna.load_study(storage=self.storage, study_name=f"step-{t}")
            scored = [x for x in study.get_trials(deepcopy=False)
                      if x.state == TrialState.COMPLETE and WARM_ATTR not in x.user_attrs]
            evaluations += len(scored)
            steps.append({
                "step": t, "base": study.user_attrs.get("base", "path"),
                "thresholds": study.user_attrs.get("thresholds"), "winner": study.user_attrs.get("winner"),
                "winner_feasible": study.user_attrs.get("winner_feasible"), "evaluated": len(scored),
                "thinned": study.user_attrs.get("thinned", []),
                "val_after_finetune": study.user_attrs.get("val_after_finetune"),
            })
        elapsed = float(self.meta.user_attrs.get("elapsed", 0.0)) + time.perf_counter() - self.started
        summary: dict[str, Any] = {
            "feasible": bool(feasible),
            "constraints": rows,
            "accuracy": accuracy,
            "evaluations": evaluations,
            "seconds": elapsed,
            "steps": steps,
            "final_tries": tries,
            "metrics": {"original": self.meta.user_attrs["extra_metrics"], "final": self._extra_metrics(module)},
            "layers": _layer_table(self.original, module),
            "margin": self.margin,
            "round_to": cfg.round_to,
            "confidence": cfg.confidence,
            "moments": cfg.moments,
            "moment_seconds": cfg.moment_seconds,
            "noise": self.meta.user_attrs.get("noise", 0.0),
            "recheck": self.meta.user_attrs.get("recheck"),
            "guard": self.meta.user_attrs.get("guard"),
            "floor": floor,
            "repairs": repairs,
            "warnings": self.meta.user_attrs.get("warnings", []),
            "advice": infeasible_advice(rows, repairs, repairs_allowed=cfg.repairs, min_margin=cfg.min_margin),
            "model": cfg.model,
            "dataset": cfg.dataset,
            "machine": {**describe_machine(), "backend": cfg.backend, "threads": cfg.threads,
                        "batch_size": cfg.batch_size},
        }
        final_dir.mkdir(parents=True, exist_ok=True)
        if feasible:
            _export(module, self.original, final_dir, self.data, summary)
        else:
            for stale in final_dir.glob("model.*"):
                stale.unlink()
        import json

        tmp = summary_path.with_name("summary.json.tmp")
        tmp.write_text(json.dumps(summary, indent=2))
        tmp.replace(summary_path)
        self.meta.set_user_attr("summary", summary)
        from netbudget.report import build_report

        build_report(self.dir)
        return CompressionResult(self.dir, bool(feasible), module if feasible else None, summary)


class _StepProgress(ProgressBar):
    """A progress bar over a step's trials showing the best feasible proxy score so far."""

    def __init__(self, console, label: str, total: int, done: int, enabled: bool) -> None:
        super().__init__(label, total, enabled=enabled, done=done, console=console, remaining=False)
        self.best: float | None = None

    def callback(self, thresholds: Mapping[str, float]):
        def on_trial(study: optuna.Study, trial: FrozenTrial) -> None:
            if MOVED_ATTR in trial.user_attrs:  # project_slack scores it at its moved point, the next trial
                return
            values = measured(trial)
            if trial.state == TrialState.COMPLETE and _meets(values, thresholds):
                self.best = max(self.best or -math.inf, float(trial.value))
            self.advance(f"best feasible {100 * self.best:.2f} %" if self.best is not None else "no feasible yet")

        return on_trial


# -- helpers -------------------------------------------------------------------------------
def dominated(ours: Mapping[str, float], theirs: Mapping[str, float]) -> bool:
    """Whether ``theirs`` has at least ``ours``' ``macs`` and ``params``, and more of one (the
    uniform guard's rule: ``ours`` spends its budget on neither compute nor capacity)."""
    keys = ("macs", "params")
    return all(ours[k] <= theirs[k] for k in keys) and any(ours[k] < theirs[k] for k in keys)


def _millions(count: float) -> str:
    return f"{count / 1e6:.2f} M"


def _thousands(count: float) -> str:
    return f"{count / 1e3:.1f} k"


def _evaluated(study: optuna.Study) -> list[FrozenTrial]:
    """The trials that took a step's budget: scored or skipped, not a bisection probe, a
    ``warm_start`` copy or a proposal ``project_slack`` moved (its moved point is scored)."""
    return [x for x in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            if not {"probe", WARM_ATTR, MOVED_ATTR} & x.user_attrs.keys()]


def _bisect(meets: Callable[[float], bool], halvings: int) -> float:
    """The smallest position in (0, 1] where ``meets`` holds, to ``1 / 2**halvings``, given that it
    fails at 0 and holds at 1 (measured values: each call may time a network)."""
    low, high = 0.0, 1.0
    for _ in range(halvings):
        mid = 0.5 * (low + high)
        if meets(mid):
            high = mid
        else:
            low = mid
    return high


def finetune_fit(epochs: int, *, lr: float, samples: int | None, seed: int) -> FitConfig:
    """A run's fine-tune: ``epochs`` of ``samples`` training samples each (``None``: the whole
    split). A sampled epoch stops early while the cosine schedule spans full epochs, so the
    learning rate stays near ``lr`` (annealing over the samples measured worse:
    ``benchmarks/finetune_schedule.py``)."""
    fit = FitConfig(epochs=epochs, lr=lr, seed=seed)
    return fit if samples is None else replace(fit, max_steps=max(1, math.ceil(samples / fit.batch_size)) * epochs)


def infeasible_advice(rows: Sequence[Mapping[str, Any]], repairs: Sequence[Mapping[str, Any]], *,
                      repairs_allowed: int, min_margin: float) -> str | None:
    """What a user can do about a result that missed a budget on re-measurement (``None`` when it
    met every one): ``rows`` are the verification's per-budget rows, ``repairs`` its repair records,
    ``repairs_allowed`` the run's ``repairs`` and ``min_margin`` its smallest safety margin (fraction)."""
    missed = [r for r in rows if not r["satisfied"]]
    if not missed:
        return None
    names = ", ".join(repr(r["text"]) for r in missed)
    if repairs and not repairs[-1]["passed"]:  # the thinning walk stops only at a hold or at every layer's floor
        return (f"{names} was missed even by the most compressed network this search allows (every layer at "
                "--min-keep): the budget sits within this machine's timing drift of what the operators can reach. "
                "Relax the budget, lower --min-keep, or add operators (--operators).")
    if not repairs and repairs_allowed > 0:  # repairs stop at once when an exact budget missed: it cannot drift
        return (f"{names} was missed, and a budget computed exactly cannot be repaired by thinning: relax the "
                "budget or add operators (--operators).")
    if repairs_allowed == 0:
        return (f"{names} was missed and repairs are off (--repairs 0): allow repairs (thin, fine-tune, verify "
                f"again), or widen the safety margin below the bound (--min-margin, now {min_margin:g}).")
    return (f"{names} was still missed after {len(repairs)} repair(s): allow more (--repairs, now {repairs_allowed}), "
            f"widen the safety margin below the bound (--min-margin, now {min_margin:g}), or relax the budget.")


def _meets(values: Mapping[str, float], thresholds: Mapping[str, float]) -> bool:
    """Whether measured ``values`` meet every threshold (base units); a value not measured misses."""
    return all(values.get(k, math.inf) <= v for k, v in thresholds.items())


def _exact(c: Constraint) -> bool:
    """Whether a budget is computed exactly (size, MACs, params, peak memory), not re-measured."""
    return c.key in COMPUTABLE_KEYS or c.metric == "memory"


def _upper_confidence(moments: Sequence[Sequence[float]], level: float) -> float:
    """One-sided upper confidence bound (Student t) of the mean of re-measurements grouped by
    moment: over the moments' means when there are several moments (values taken at one
    moment are not independent), else over the single values; the value itself if exact."""
    values = [float(np.mean(m)) for m in moments] if len(moments) > 1 else list(moments[0])
    if len(values) < 2:
        return float(values[0])
    from scipy.stats import t as student

    sd = float(np.std(values, ddof=1))
    return float(np.mean(values) + student.ppf(level, len(values) - 1) * sd / math.sqrt(len(values)))


def _one_slow_moment(values: Mapping[str, Sequence[Sequence[float]]], thresholds: Mapping[str, float],
                     level: float) -> bool:
    """Whether every budget of ``values`` (re-measurements grouped by moment, base units) that
    misses its threshold would meet it with its slowest moment left out (with one moment: its
    slowest re-measurement); False when fewer than two would be left to bound."""
    for key, moments in values.items():
        if _upper_confidence(moments, level) <= thresholds[key]:
            continue
        if len(moments) > 1:
            slowest = int(np.argmax([np.mean(m) for m in moments]))
            rest, left = [m for i, m in enumerate(moments) if i != slowest], len(moments) - 1
        else:
            rest, left = [sorted(moments[0])[:-1]], len(moments[0]) - 1
        if left < 2 or _upper_confidence(rest, level) > thresholds[key]:
            return False
    return True


def _kept(space: SearchSpace, root: str, ratio: float) -> int:
    from netbudget.compress.channels import kept_channels

    return kept_channels((space.channel_counts or {})[root], min(ratio, 0.99), space.round_to)


def _thinner_params(space: SearchSpace, params: Mapping[str, Any], position: float
                    ) -> tuple[dict[str, float], float] | None:
    """``params`` with every channel dimension moved towards its most compressed value by
    ``position`` of its remaining range (unit cube), moved on by ``FALLBACK_STEP`` until a kept
    (rounded) channel count changes; the new params and the position used, or ``None`` when
    no count can change."""
    row = space.encode(params)
    channels = [i for i, d in enumerate(space.dimensions) if d.operator == "channels"]

    def kept(config: Mapping[str, float]) -> list[int]:
        return [_kept(space, root, config[space.dimensions[i].name])
                for i in channels for root in space.dimensions[i].targets]

    before = kept(params)
    while True:
        thinner = row.copy()
        thinner[channels] += position * (1.0 - thinner[channels])
        config = space.decode(thinner)
        if kept(config) != before:
            return config, position
        if position >= 1.0:
            return None
        position = min(1.0, position + FALLBACK_STEP)


def _estimator(cost: CostModel, key: str) -> Callable[[Mapping[str, Any]], float]:
    return lambda params: cost.estimate(params)[key]


def _ranked(study: optuna.Study, thresholds: Mapping[str, float], tie_tolerance: float,
            tie_break: str = "usage") -> list[FrozenTrial]:
    """Scored trials, best first: feasible ones by proxy score (among those within
    ``tie_tolerance`` of the best, the one using most budget first, or with ``tie_break``
    ``macs`` the one with most dense MACs first), then infeasible ones by how far they miss."""
    scored = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    if not scored:
        raise UnreachableBudgetError(f"Step {study.study_name} evaluated no candidate; raise --trials.")

    def usage(t: FrozenTrial) -> float:
        values = measured(t)
        return float(np.mean([values.get(k, math.inf) / v for k, v in thresholds.items()]))

    def miss(t: FrozenTrial) -> float:
        return max(measured(t).get(k, math.inf) / v for k, v in thresholds.items())

    feasible = [t for t in scored if miss(t) <= 1.0]
    infeasible = sorted((t for t in scored if miss(t) > 1.0), key=miss)
    if not feasible:
        return infeasible
    best = max(t.value for t in feasible)
    near = [t for t in feasible if t.value >= best - tie_tolerance]
    if tie_break == "macs":  # a trial of a run started before trials recorded their MACs counts as 0
        near.sort(key=lambda t: (-t.user_attrs.get("macs", 0.0), -usage(t), -t.value))
    else:
        near.sort(key=lambda t: (-usage(t), -t.value))
    rest = sorted((t for t in feasible if t.value < best - tie_tolerance), key=lambda t: -t.value)
    return near + rest + infeasible


def _thinning_positions(with_itself: bool) -> list[float]:
    """Shares of a network's remaining channel range (unit cube) the re-check and repairs try
    in turn: 0 (the network itself) ``with_itself``, then ``FALLBACK_STEP`` doubling up to
    1 (every layer at ``--min-keep``). Doubling, not even steps: latency falls in plateaus (on
    the ablation's machine C, resnet20 thinned by 1/32 up to 1/4 of its range timed no faster,
    2.3-2.6 ms, while the most compressed network times 0.36x of dense)."""
    shares = [FALLBACK_STEP]
    while shares[-1] < 1.0:
        shares.append(min(1.0, 2 * shares[-1]))
    return ([0.0] if with_itself else []) + shares


def _tight_line(bound: float, margin: float) -> float:
    """The value (base units) above which a measured ``bound`` counts as tight: ``TIGHT_MARGINS``
    safety margins (fractions) below it."""
    return bound * (1.0 - TIGHT_MARGINS * margin)


def _quantised_levels(values: torch.Tensor) -> torch.Tensor | None:
    """The sorted distinct levels of a weight's nonzero ``values`` when they repeat (at most 256
    levels, fewer than values): a quantised weight. None for a float one (every value distinct)."""
    levels = values.unique()  # sorted
    return levels if 0 < levels.numel() <= 256 and levels.numel() < values.numel() else None


def _inherit_compression(candidate: CompressedModel) -> None:
    """Keep zeros and codebooks that earlier steps left in weights this step does not touch.

    A weight is quantised when its nonzero values repeat (at most 256 levels, fewer than
    values): a trained float weight has every value distinct. The rule once required fewer
    levels than a quarter of the weight, which a small quantised first layer misses (vgg's
    144 weights at 6-7 bits keep 40-63 levels); fine-tuned unquantised, its packed size grew
    past a size bound the search had met (ablation: 0.1001x against 0.1x)."""
    for name, module in candidate.module.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        key = f"{name}.weight"
        weight = module.weight.detach()
        zeros = weight == 0
        if zeros.any():
            candidate.masks[key] = candidate.masks[key] & ~zeros if key in candidate.masks else ~zeros
        if key not in candidate.codebooks:
            levels = _quantised_levels(weight[~zeros])
            if levels is not None:
                candidate.codebooks[key] = levels


def _save_model(module: nn.Module, path: Path, data: Dataset, params: Mapping[str, Any]) -> None:
    """Save the whole module (its architecture changed) with the configuration that made it, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": MODEL_FORMAT, "version": 1, "module": module, "params": dict(params),
        "input_shape": tuple(data.input_shape), "num_classes": data.num_classes,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def _layer_table(original: nn.Module, module: nn.Module) -> list[dict[str, Any]]:
    """Per Conv / Linear layer: channels before / after, sparsity, distinct-value bits (32: float).

    A weight counts as quantised when its nonzero values repeat (``_quantised_levels``, as the
    final fine-tune decides): a small float layer (a thinned stem of 72 weights) has at most 256 distinct values
    too, and was reported at 7 bits."""
    before = {n: m for n, m in original.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    rows = []
    for name, m in module.named_modules():
        if name not in before or not isinstance(m, (nn.Conv2d, nn.Linear)):
            continue
        w = m.weight.detach()
        nonzero = w[w != 0]
        levels = _quantised_levels(nonzero)
        rows.append({
            "layer": name,
            "out_before": int(before[name].weight.shape[0]),
            "out_after": int(w.shape[0]),
            "sparsity": float((w == 0).float().mean()),
            "bits": max(1, (levels.numel() - 1).bit_length()) if levels is not None else 32,
        })
    return rows


def _export(module: nn.Module, original: nn.Module, final_dir: Path, data: Dataset, summary: dict[str, Any]) -> None:
    """``model.pt``, ``model.onnx`` (checked in onnxruntime), ``original.onnx``, ``model.nbz``."""
    import onnxruntime as ort

    from netbudget.export.onnx import to_onnx_bytes
    from netbudget.export.packed import pack_state_dict

    _save_model(module, final_dir / "model.pt", data, {})
    shape = (1, *data.input_shape)
    for name, net in (("model.onnx", module), ("original.onnx", original)):
        blob = to_onnx_bytes(net, shape)
        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
        with torch.no_grad():
            for x in data.test.x[:4]:
                expected = net(x[None]).numpy()
                got = session.run(None, {"input": x[None].numpy()})[0]
                if not np.allclose(expected, got, atol=1e-3, rtol=1e-3):
                    raise RuntimeError(f"{name}: ONNX Runtime output differs from PyTorch by {np.abs(expected - got).max()}")
        (final_dir / name).write_bytes(blob)
    (final_dir / "model.nbz").write_bytes(pack_state_dict(module.state_dict()))
