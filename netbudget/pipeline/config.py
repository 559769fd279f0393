"""``RunConfig``: every setting of a compression run, as written to ``run.yaml``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netbudget.constraints import parse_constraints
from netbudget.exceptions import InvalidArgumentError
from netbudget.metrics.latency import BACKENDS
from netbudget.proxy import FIDELITIES
from netbudget.search.cooling import COOLING_KINDS
from netbudget.space import OPERATORS, POLICIES

__all__ = ["RunConfig", "default_operators"]

# settings added after runs had started, with the value that reproduces what such a run did:
# a run's own run.yaml without the key goes on as it began (``RunConfig.read(..., run=True)``)
BEFORE_ADDED: dict[str, Any] = {"floor_path": "search", "final_bn_batches": 0, "final_merge": "best", "final_tries": 1,
                                "uniform_guard": False, "retimes": 0, "last_step": "path", "project_slack": False}
FLOOR_PATHS = ("uniform", "once", "search")  # ``floor_path``: a run whose floor misses the searched bound
FINAL_MERGES = ("soup", "best")  # ``final_merge``: what several final fine-tunes give
TIE_BREAKS = ("usage", "macs")  # ``tie_break``: which of a step's near-tied candidates wins
LAST_STEPS = ("path", "original")  # ``last_step``: which network the last cooling step compresses


def default_operators(metrics: list[str]) -> list[str]:
    """Operators chosen from the constrained metrics.

    Latency, MACs and memory fall only when channels go (``channels``); storage falls with
    zeros and fewer bits (``prune``, ``bits``) and with fewer channels too: with channels as
    well the search found networks 1.8 pt more accurate under ``size <= 0.05x`` (ablation,
    vgg, 5 paired seeds, ahead in each), so a size budget searches all three; params falls
    with channels or zeros.
    """
    chosen: list[str] = []
    for metric in metrics:
        if metric in ("latency", "macs", "memory"):
            wanted = ["channels"]
        elif metric == "size":
            wanted = ["channels", "prune", "bits"]
        elif metric == "params":
            wanted = ["channels", "prune"]
        else:
            wanted = ["channels"]
        chosen += [op for op in wanted if op not in chosen]
    return [op for op in OPERATORS if op in chosen]


@dataclass(kw_only=True)
class RunConfig:
    """Settings of one ``netbudget compress`` run (the content of ``run.yaml``).

    Attributes:
        constraints: budgets, e.g. ``["latency <= 0.5x", "size <= 0.25x"]``.
        model: ``zoo:NAME`` or ``package.module:factory`` (a callable returning the module).
        weights: state dict (.pt) of the trained network; zoo networks without weights are
            trained once and cached.
        dataset: dataset name or path (``netbudget.data.load_dataset``).
        width: width multiplier of zoo networks.
        steps: cooling steps ``T``.
        cooling: ``auto``, ``exponential``, ``linear`` or ``one-step``. ``auto`` (default):
            ``exponential`` when a budget is modelled (latency, user metrics, peak memory);
            when every budget is computed exactly from a configuration (size, MACs, params),
            ``one-step`` with the evaluations and step fine-tuning of all ``steps``
            (``trials * steps`` candidates, ``step_epochs * steps`` epochs, ``steps`` = 1).
            The sampler never proposes a configuration outside a computed budget, so cooling
            has nothing to learn there, and it commits early layers under loose budgets that
            the tight one cannot undo: in the ablation (vgg, ``size <= 0.05x``) one-step beat
            exponential cooling in every seed. ``run.yaml`` records what ``auto`` resolved to.
        cooling_rate: rate ``a`` of the exponential schedule.
        trials: evaluated candidates per step (the seed points included).
        last_trials: evaluated candidates of the last of several cooling steps (default:
            ``trials``); with ``last_step`` ``original`` the earlier steps only lead to the
            path's seed, so a budget can be moved from them to the search under the target
            (``trials 6``, ``last_trials 24``: 36 evaluations as ``trials 12`` over 3 steps).
            Ignored with one step. The startup count (``startup_trials``) follows ``trials``.
            That split lost 0.34 +- 0.28 pt to the default in the ablation (vgg, ``lat60-small``,
            3 seeds): its 24 candidates did not reach more MACs under the target than 12.
        split_seeds: where the space mixes channel pruning with weight operators (``prune``,
            ``bits``), each step also starts from two split seeds besides the uniform one: one
            kind of operator compressed as little as the step's budgets allow while the other
            is at its most, then the other as little as they allow. A uniform seed compresses
            every operator together, so with ``latency <= 0.5x`` and ``size <= 0.1x`` it pruned
            and quantised weights that the latency budget's channel pruning had already made
            small enough (size 0.014x against 0.1x). Ignored by the ``uniform`` sampler, which
            stays the one-ratio baseline.
        startup_trials: space-filling trials before the sampler's models take over
            (default: a third of ``trials``, at least 2).
        operators: ``channels``, ``prune``, ``bits``; default chosen from the constraints.
        policy: ``layer`` or ``block`` (one knob per layer or per block).
        min_keep: smallest fraction of a unit's original channels that is kept.
        round_to: kept channel counts are rounded to this multiple (1 disables; with more
            than 8, layers under the half-way point keep 8). 8 by default: 16 matches the
            AVX-512 kernels' channel blocks, but searched no better in the ablation.
        sampler: a name of ``netbudget.search.SAMPLERS``; ``uniform`` evaluates only the
            uniform-ratio configuration of each step.
        proxy: how candidates are scored: ``reference``, ``bn``, ``lookahead``, ``agreement``.
        proxy_steps: SGD steps of the ``lookahead`` proxy. 50 by default: in the ablation
            (vgg, Fashion-MNIST, latency <= 0.4x) 20 steps ranked fine-tuned candidates as
            well (Spearman +0.87 vs +0.85) but the search with them ended 0.72 pt lower over 5
            paired seeds (89.70 % vs 90.42 %).
        backend: latency backend, ``onnxruntime`` or ``torch``.
        batch_size: samples per timed forward pass.
        threads: intra-op threads of the latency backend.
        step_epochs: fine-tuning epochs of each step's winner.
        final_epochs: fine-tuning epochs of the final network.
        final_bn_batches: after the final fine-tune (each try, and each repair's fine-tune), the
            batch-norm statistics are re-estimated from this many batches of 128 training
            samples (0: kept as the fine-tune left them). A sampled fine-tune ends at a high
            learning rate, where its running statistics lag the weights: on resnet20
            ``lat50-small`` (machine C's CPU, ``benchmarks/soup.py``) re-estimating them gained
            +0.71 +- 0.25 pt (mean of 4 fine-tunes per network, 10 networks, each ahead), for seconds.
        final_tries: final fine-tunes of the re-checked network, each from the same weights with
            its own seed (the first: the seed a single fine-tune uses, so ``1`` is one fine-tune);
            ``final_merge`` says what is verified and exported, and ``final/summary.json`` lists
            each try's and the result's validation and test top-1. ``auto`` (default): 2 when
            fine-tuning is sampled (``finetune_samples`` set: a short fine-tune, where a soup of
            two gained +0.66 / +0.52 pt over one try for the default / uniform, every run, on
            resnet20 ``lat50-small``), else 1 (full fine-tunes annealed to zero: the soup gained
            +0.02 +- 0.07 pt on resnet20 ``lat50``, 10 runs). ``run.yaml`` records the number.
        final_merge: with ``final_tries`` > 1: ``soup`` averages the tries' weights (zeros and
            codebooks re-applied, batch-norm statistics re-estimated from ``final_bn_batches``
            batches, 40 when that is 0); ``best`` keeps the try with the best validation top-1.
            Measured on ten resnet20 ``lat50-small`` networks (``benchmarks/soup.py``, over one
            try as fine-tuned): a soup of 2 +1.28 +- 0.29 pt, one try with re-estimated
            statistics +0.71 +- 0.25, the better of 2 on validation data +0.31 +- 0.28.
        finetune_lr: learning rate of every fine-tune.
        finetune_samples: training samples per fine-tuning epoch (``None``: all).
        distill: distil from the original network while fine-tuning.
        skip_margin: a candidate whose measured value exceeds the step threshold by more
            than this fraction is recorded infeasible without being scored.
        safety_sigmas: measured bounds are searched ``safety_sigmas`` noise standard
            deviations below their value, so the result survives re-measurement.
        min_margin: the smallest such margin (fraction of the bound). 0.04 by default: on a
            shared machine a network's latency ratio moves between moments minutes apart
            (ablation, from the re-check before the final fine-tune to verification: up to
            +2.7 % over 10 runs in a calm period, +3.9 % and +8.7 % in the two default runs of
            the standard ``latency <= 0.4x`` cell that failed verification with 0.02), far
            more than re-timings at one moment spread. Lower it on a quiet, dedicated machine.
        remeasurements: independent re-measurements of each measured constraint at the end.
        moments: the re-check and the verification spread their re-measurements over this
            many moments, ``moment_seconds`` apart, and bound the mean over the moments' means
            (1: over the single re-measurements). 5 by default: re-measurements at one moment
            are not independent on a shared machine (vgg, ``latency <= 0.5x``: a network's
            ratio measured 0.470-0.546x at moments 20 s apart, sd 4.4 %, while each moment's 10
            back-to-back re-measurements bounded it within +0.5-1.5 %; a later moment's mean
            exceeded a one-moment 95 % bound in 42 % of 276 pairs, a bound over 5 moments in
            10 %); with 5 moments the ablation's ``latency <= 0.5x`` cell verified 10 of 10
            runs. The wider bound can miss at verification what the re-check passed (it failed
            the demo and the end-to-end test once in CI): ``repairs`` handles that.
        moment_seconds: pause between two moments (seconds).
        repairs: how many times a result that verification finds over a measured budget is
            repaired: its channels thinned until a fresh re-measurement meets the search
            threshold again, ``step_epochs`` of fine-tuning, and a new verification. 0 reports
            the miss (nothing exported) at once.
        retimes: how many times the re-check, a repair and the uniform guard's re-check re-time
            one try (the network itself or one thinning) whose miss rests on one slow moment:
            the upper bound with that moment's mean left out meets the search threshold. The
            try is re-measured at fresh moments and judged on them alone, by the same bound;
            verification is unchanged. 1 by default: on the ablation's machine G a moment now
            and then timed 8-17 % slower than the others (resnet20 thinned by 1/2: one moment
            of five at 1.08x its threshold, the others 0.89x), and a try that missed so sent the
            walk on to thin twice as much; 27 of the 90 missed tries of 42 ``lat60-small`` runs
            were such misses, in 8 of the 12 runs thinned by 0.25 or more of their range (87.32 %
            against 89.60 %). Measured there with 1 (15 runs): 5 of 12 re-timed tries held; the
            default level with its runs before (+0.11 +- 0.38 pt); hours when every moment
            spreads 10-15 % still thinned two runs hard. 0: every miss is final.
        step_thinning: how many thinned variants a cooling step evaluates when its best
            candidates fail confirmation (their re-timing misses the step threshold, often by
            a few percent of drift): the failing candidate's channels are thinned along its own
            line by about the measured miss, and the variant joins the step's candidates and
            competes by proxy. 0 takes the next-ranked candidate at once (measured: with 0, a
            vgg ``latency <= 0.5x`` run lost its two best candidates by 1-2 % misses and fell to
            the most compressed network, 0.4 pt below uniform).
        project_misses: a candidate the sampler proposes over a step threshold is moved along
            the straight line towards the most compressed configuration to the first position
            that meets it (bisection on measurements, 1/32 of the segment) and that point is
            scored as the step's next trial, so a tight budget's proposals are not spent on
            the infeasible part of the space. Off by default (an ablation variant).
        project_slack: the mirror image: a candidate the sampler proposes under every step
            threshold is moved along the straight line towards the original network to the
            last position that still meets them (bisection on measurements, 1/32 of the
            segment) and that point is scored instead, so every scored proposal spends the
            step's budget (on vgg ``latency <= 0.6x``, final top-1 ranks with the shipped
            network's MACs at Spearman +0.83). The moved proposal keeps its measurements for
            the constraint models and takes none of the step's budget. Measured (ablation,
            H's vgg ``latency <= 0.6x``, small fine-tune, 12 paired seeds): +0.22 +- 0.34 pt
            over the search without it (ahead in 9), +0.16 +- 0.39 over ``one-step``; on G's
            resnet20, 12 seeds: level (-0.05 +- 0.29), ahead of every rival; on vgg's
            ``size <= 0.1x`` (one step, 5 seeds): +0.08 +- 0.14; on ``size <= 0.05x`` (standard
            fine-tune, 5 seeds): +0.35 +- 0.05; on resnet20's ``size <= 0.1x`` (5 seeds):
            level (+0.00 +- 0.22). On by default (``-slack``); on a latency budget it costs
            about 1.4x the run time (timing the moved points), on a size budget 1.07-1.13x:
            False for the shorter search.
        floor_path: what a run does when channels are its only operator and its most
            compressed configuration (every layer at ``min_keep``) misses, at the start, the
            last step's threshold of a measured budget (the bound less the safety margin): no
            search can end anywhere else. ``uniform`` (default): each step takes, without a
            search, the uniform configuration that meets its threshold (one evaluation), the
            ``uniform`` sampler's path to the floor; ``once``: the floor at once, fine-tuned
            for the whole budget (``steps * step_epochs + final_epochs``); ``search``: search
            anyway. Measured (ablation, vgg ``latency <= 0.4x`` with the small fine-tune on a
            machine whose floor timed 0.385-0.391x against a 0.384x threshold, 5 paired seeds):
            all 20 runs of the four ended on the floor's widths; the uniform path 88.48 %
            (this default reproduces the ``uniform`` sampler's runs to 0.01 pt), once 87.91 %,
            the search's path 87.78 % (the uniform path ahead of it in 5 of 5 seeds); resnet20
            there: 86.67 % against the search's 85.32 % (ahead in 5 of 5) and once's 84.55 %.
        uniform_guard: when channels are the only operator and the search's network, re-checked,
            has no more multiply-accumulates and no more parameters than the network of the
            uniform path (what ``sampler='uniform'`` ends on: each step every layer pruned alike
            to the step's thresholds; re-checked alike), and fewer of one, that network is
            trained as the uniform path trains it (each step's fine-tune) and shipped instead.
            Such a searched network spends its budget on neither compute nor capacity: in the
            ablation (resnet20, ``latency <= 0.5x``, machine F, default, one-step and reference,
            5 seeds each, both fine-tuning budgets) the 15 such final networks scored 0.23 pt
            under the uniform runs' on average (12 of 15 below), the 15 others 0.13 pt above
            (``benchmarks/dominance.py``). On by default; a run on the uniform path (``sampler``
            uniform, a run at its floor) skips it; ``final/summary.json`` records the
            comparison (``guard``).
        confidence: a measured budget holds when the one-sided upper confidence bound (at this
            level) of the mean of its re-measurements meets it; re-measurements above the
            bound are counted and reported either way.
        tie_tolerance: proxy scores within this (fraction) of the best count as equal; among
            them ``tie_break`` picks the winner.
        tie_break: which near-tied candidate wins: ``usage`` (the one using the most of the
            step's budget, mean of measured / threshold) or ``macs`` (the one with the most
            dense multiply-accumulates, i.e. the most compute kept; measured budgets, then the
            proxy score, break what remains). ``macs`` with a wide ``tie_tolerance`` (0.01)
            tested the ablation's capacity hypothesis and lost 1.03 pt to ``usage`` (resnet20,
            machine G, 4 of 4 seeds: each step kept more MACs, the last step then cut harder;
            docs/design.md).
        last_step: which network the last of several cooling steps compresses: ``original``
            (the original network, searched afresh under the target with the path's network,
            thinned to meet it, as a seed; its winner is fine-tuned ``steps * step_epochs``, the
            fine-tuning the path's network had) or ``path`` (the previous step's winner, as runs
            did before session 52). The cooled path's early choices narrow what the target can
            hold: in the ablation (``lat60-small``, 12 paired seeds) ``original`` shipped vgg
            networks with 2.49 M MACs against 2.01 M and won +0.33 +- 0.30 pt (ahead in 11 of
            12); on resnet20 it was level (-0.01 +- 0.48). A path that ended with every layer at
            ``min_keep`` (channels only) is fine-tuned in the last step instead.
        warm_start: a last step that searches the original network (``last_step`` ``original``)
            starts its models from the first step's evaluations and probes: the same network,
            scored by the same proxy and measured alike, under a looser threshold. They take
            none of its ``trials`` and a scored one can win where it meets the target's
            thresholds. Off: in the ablation (vgg, ``lat60-small``, 12 paired seeds) it was
            level with the default (-0.02 +- 0.47 pt), shipping fewer MACs (2.21 M against 2.49 M).
        seed: seed of the data split, sampler and fine-tuning.
        storage: Optuna storage URL (default: ``sqlite:///RUN_DIR/study.db``).
    """

    constraints: list[str]
    model: str = "zoo:vgg"
    weights: str | None = None
    dataset: str = "mnist5k"
    width: float = 1.0
    steps: int = 5
    cooling: str = "auto"
    cooling_rate: float = 0.5
    trials: int = 12
    last_trials: int | None = None
    split_seeds: bool = True
    startup_trials: int | None = None
    operators: list[str] | None = None
    policy: str = "layer"
    min_keep: float = 0.2
    round_to: int = 8
    sampler: str = "netbudget"
    proxy: str = "lookahead"
    proxy_steps: int = 50
    backend: str = "onnxruntime"
    batch_size: int = 1
    threads: int = 1
    step_epochs: int = 1
    final_epochs: int = 3
    final_tries: int | str = "auto"
    final_bn_batches: int = 40
    final_merge: str = "soup"
    finetune_lr: float = 0.01
    finetune_samples: int | None = None
    distill: bool = True
    skip_margin: float = 0.25
    safety_sigmas: float = 3.0
    min_margin: float = 0.04
    remeasurements: int = 20
    moments: int = 5
    moment_seconds: float = 10.0
    repairs: int = 2
    retimes: int = 1
    step_thinning: int = 4
    project_misses: bool = False
    project_slack: bool = True
    floor_path: str = "uniform"
    uniform_guard: bool = True
    confidence: float = 0.95
    tie_tolerance: float = 0.002
    tie_break: str = "usage"
    last_step: str = "original"
    warm_start: bool = False
    seed: int = 0
    storage: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.constraints, str):
            self.constraints = [self.constraints]
        if not self.constraints:
            raise InvalidArgumentError("At least one constraint is needed, e.g. --constraint 'latency <= 0.5x'.")
        parsed = parse_constraints(self.constraints)  # raises InvalidConstraintError with the offending text
        self.constraints = [c.text for c in parsed]
        if self.operators is None:
            self.operators = default_operators([c.metric for c in parsed])
        self.operators = list(self.operators)
        unknown = sorted(set(self.operators) - set(OPERATORS))
        if unknown or not self.operators:
            raise InvalidArgumentError(f"`operators` must be a non-empty subset of {OPERATORS}, but got {self.operators}.")
        if self.final_tries == "auto":
            self.final_tries = 2 if self.finetune_samples is not None else 1
        checks = [
            ("cooling", self.cooling in ("auto", *COOLING_KINDS), f"one of {('auto', *COOLING_KINDS)}"),
            ("policy", self.policy in POLICIES, f"one of {POLICIES}"),
            ("proxy", self.proxy in FIDELITIES, f"one of {FIDELITIES}"),
            ("backend", self.backend in BACKENDS, f"one of {BACKENDS}"),
            ("steps", self.steps >= 1, ">= 1"),
            ("trials", self.trials >= 1, ">= 1"),
            ("last_trials", self.last_trials is None or (type(self.last_trials) is int and self.last_trials >= 1),
             "an integer >= 1 or None (as `trials`)"),
            ("split_seeds", isinstance(self.split_seeds, bool), "true or false"),
            ("min_keep", 0 < self.min_keep < 1, "in (0, 1)"),
            ("round_to", type(self.round_to) is int and self.round_to >= 1, "an integer >= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("threads", self.threads >= 1, ">= 1"),
            ("step_epochs", self.step_epochs >= 0, ">= 0"),
            ("final_epochs", self.final_epochs >= 0, ">= 0"),
            ("final_tries", type(self.final_tries) is int and self.final_tries >= 1, "an integer >= 1 or 'auto'"),
            ("final_bn_batches", type(self.final_bn_batches) is int and self.final_bn_batches >= 0, "an integer >= 0"),
            ("final_merge", self.final_merge in FINAL_MERGES, f"one of {FINAL_MERGES}"),
            ("finetune_lr", self.finetune_lr > 0, "> 0"),
            ("skip_margin", self.skip_margin >= 0, ">= 0"),
            ("safety_sigmas", self.safety_sigmas >= 0, ">= 0"),
            ("min_margin", 0 <= self.min_margin < 1, "in [0, 1)"),
            ("remeasurements", self.remeasurements >= 2, ">= 2"),
            ("moments", type(self.moments) is int and 1 <= self.moments <= self.remeasurements,
             f"an integer from 1 to remeasurements ({self.remeasurements})"),
            ("moment_seconds", self.moment_seconds >= 0, ">= 0"),
            ("repairs", type(self.repairs) is int and self.repairs >= 0, "an integer >= 0"),
            ("retimes", type(self.retimes) is int and self.retimes >= 0, "an integer >= 0"),
            ("step_thinning", type(self.step_thinning) is int and self.step_thinning >= 0, "an integer >= 0"),
            ("project_misses", isinstance(self.project_misses, bool), "true or false"),
            ("project_slack", isinstance(self.project_slack, bool), "true or false"),
            ("uniform_guard", isinstance(self.uniform_guard, bool), "true or false"),
            ("floor_path", self.floor_path in FLOOR_PATHS, f"one of {FLOOR_PATHS}"),
            ("confidence", 0.5 <= self.confidence < 1, "in [0.5, 1)"),
            ("tie_tolerance", self.tie_tolerance >= 0, ">= 0"),
            ("tie_break", self.tie_break in TIE_BREAKS, f"one of {TIE_BREAKS}"),
            ("last_step", self.last_step in LAST_STEPS, f"one of {LAST_STEPS}"),
            ("warm_start", isinstance(self.warm_start, bool), "true or false"),
            ("width", self.width > 0, "> 0"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise InvalidArgumentError(f"`{name}` must be {expected}, but got {name}={getattr(self, name)!r}.")
        if self.cooling == "auto":
            from netbudget.pipeline.cost import COMPUTABLE_KEYS

            if all(c.key in COMPUTABLE_KEYS for c in parsed):  # one step with every step's budget
                self.trials, self.step_epochs = self.trials * self.steps, self.step_epochs * self.steps
                self.cooling, self.steps = "one-step", 1
            else:
                self.cooling = "exponential"
        if self.startup_trials is not None and self.startup_trials < 1:
            raise InvalidArgumentError(f"`startup_trials` must be >= 1, but got startup_trials={self.startup_trials}.")
        if self.finetune_samples is not None and self.finetune_samples < 1:
            raise InvalidArgumentError(f"`finetune_samples` must be >= 1, but got {self.finetune_samples}.")
        from netbudget.search.registry import SAMPLERS

        if self.sampler not in SAMPLERS:
            raise InvalidArgumentError(f"`sampler` must be one of {', '.join(SAMPLERS)}, but got sampler={self.sampler!r}.")
        if ":" not in self.model:
            raise InvalidArgumentError(
                f"`model` must be 'zoo:NAME' or 'package.module:factory', but got model={self.model!r}."
            )

    @property
    def num_startup(self) -> int:
        """Startup trials actually used."""
        return self.startup_trials if self.startup_trials is not None else max(2, self.trials // 3)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``run.yaml``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Build from ``run.yaml`` content; unknown keys are an error naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidArgumentError(f"Unknown settings {unknown} in the run configuration; known: {sorted(known)}.")
        return cls(**dict(data))

    def write(self, path: str | Path) -> Path:
        """Write as YAML (atomically)."""
        import yaml

        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, path: str | Path, *, run: bool = False) -> RunConfig:
        """Read a YAML run configuration. ``run``: ``path`` is a run's own ``run.yaml``; a
        setting added after the run started (``BEFORE_ADDED``) takes the value it ran with."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise InvalidArgumentError(f"Run configuration {path} does not exist.")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise InvalidArgumentError(f"{path} is not valid YAML: {error}") from error
        if not isinstance(data, dict):
            raise InvalidArgumentError(f"{path} must hold a mapping of settings, got {type(data).__name__}.")
        if run:
            data = {**BEFORE_ADDED, **data}
        try:
            return cls.from_dict(data)
        except InvalidArgumentError as error:
            raise InvalidArgumentError(f"{path}: {error}") from error
