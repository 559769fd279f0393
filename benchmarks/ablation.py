"""The ablation: does constraint-aware search with cooling beat "prune every layer alike"?

Networks: zoo ``vgg`` and ``resnet20`` trained on Fashion-MNIST (cached checkpoints).
Latency: onnxruntime, 1 thread, batch 32 (compute dominates per-operator overhead there;
the dense latency and its spread are recorded). Cells (budgets x fine-tuning budgets):

    lat50, lat40             latency <= 0.5x / 0.4x, channels, standard fine-tune
    lat40-small              latency <= 0.4x with a small fine-tune (5k samples per epoch)
    lat50-small              latency <= 0.5x with the small fine-tune (for machines where 0.4x is tight)
    lat60-small              latency <= 0.6x with the small fine-tune (for machines where 0.5x is the floor)
    two                      latency <= 0.5x and size <= 0.1x, channels + prune + bits
    two-size                 latency <= 0.8x and size <= 0.05x (size binds), channels + prune + bits
    size05                   size <= 0.05x, prune + bits: at the floor here (see below)
    size10-small             size <= 0.1x, prune + bits, small fine-tune
    lat25, lat15             the issue's tight cells: unreachable here (see below)

The zoo networks cannot go below about 0.32x of their dense latency on onnxruntime at
batch 32 with at least 20 % of every layer's channels (measured: vgg 0.317-0.335x, resnet20
0.334-0.389x at 80-95 % of channels removed, batch 32 and 128): thin layers stop getting
faster. The pipeline's fail-fast check rejects lat25 / lat15 and the tightest two-constraint
cell (latency <= 0.3x); the script records that instead of a number and runs 0.4x as its
tight latency cell. ``size <= 0.05x`` is near the packed format's floor (vgg 0.049x with 95 %
of each layer's weights zeroed at 2 bits, the uniform answer), but not one corner: small
layers have room, and searches found networks 1-4 pt more accurate at that size (session 11;
``size10-small`` was the storage cell before).

Methods (same evaluation budget, same final fine-tune): ``exponential`` (netbudget's
default), ``linear``, ``one-step``, ``penalty``, ``uniform``, ``random``, ``tpe``,
``optuna-gp``, ``reference`` (exponential cooling scored by accuracy before fine-tuning).
Headroom per cell: random feasible configurations with bounded ratios (a random direction,
pushed towards the most compressed corner by bisection until it meets the budget; where
only the corner's neighbourhood meets it, coordinate-wise sampling of the feasible region), each
fine-tuned with the same total budget as a method; the proxy study ranks the fidelities by
Spearman correlation with those fine-tuned accuracies.

Rows are appended to ``benchmarks/results/ablation.json`` as they finish; a rerun skips
finished rows and resumes interrupted runs (their run directories live under
``$NETBUDGET_CACHE/ablation``), so the grid can be split over machines and sessions:

    python benchmarks/ablation.py --quick                       # vgg, lat40-small, 3 methods, 1 seed
    python benchmarks/ablation.py --networks vgg --cells lat40 --methods exponential,uniform --seeds 5
    python benchmarks/ablation.py --networks vgg --cells lat40-small --seeds 0 --headroom 20 --redo-headroom

Rows, dense entries, unreachable cells, headroom and proxy studies record the machine (CPU
model, AVX-512 extensions, threads) and rows the base network's top-1: latency ratios and
reachable budgets differ between CPUs and a checkpoint retrained elsewhere differs, so the
Markdown tags another machine's cells (``lat50 @B``) and pairs rows only on the same machine
and base network; a rerun on a new machine redoes its seeds and its headroom there rather than
skip them. A cell's headroom is computed once per machine; ``--redo-headroom`` recomputes one
stored with fewer configurations than ``--headroom`` or drawn by an older construction (a cell
mixing channels with prune / bits draws one kind of operator at a time since session 14; the
study and its proxy rows are replaced when it ends). A study saves each fine-tuned configuration as it finishes
(``<network>-<cell>-headroom.json`` beside the run directories): stopped, it resumes with the
configurations it had left, and a larger one keeps the smaller one's and draws the rest.
``--headroom-operators channels,prune,bits`` draws a study over other operators than the
cell's budgets' defaults (those of when the cell first ran), stored beside the default one
(``<network>-<cell>-headroom-channels+prune+bits.json``); it judges the ``*-channels`` rows.
Latency bounds are searched below their value by the cell's margin (``min_margin`` in CELLS:
2 % in the cells that ran before the pipeline's default became 4 %; the headroom uses it too).
The study accepts a configuration from one timing, the runs only what holds over five moments:
``--retime-headroom`` re-times a stored study's configurations as runs verify (2 timings at
each of 5 moments 10 s apart, 95 % upper bound; resumable, ``...-headroom-retimed.json``),
stores the bounds in the study as ``retimed`` and the goal line says which configurations a run
could have kept and how accurate they were:

    python benchmarks/ablation.py --networks vgg --cells lat40-small --retime-headroom

The study fine-tunes each configuration once (fine-tuning seed 0), so its best is the best of
~20 noisy draws. ``--confirm-headroom N`` re-fine-tunes a stored study's uniform configuration
and its three best other networks with N fine-tuning seeds in all (resumable,
``...-headroom-confirmed.json``), stores them in the study as ``confirmed``, and the goal lines
add the room on the means (the verdict stays the study's own draws', as the issue defines it):

    python benchmarks/ablation.py --networks resnet20 --cells lat50-small --confirm-headroom 5
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from netbudget.metrics import describe_machine

RESULTS = Path(__file__).parent / "results"
METHODS = ["exponential", "one-step", "uniform", "reference", "linear", "penalty", "random", "tpe", "optuna-gp",
           "exponential-la20", "exponential-recheck", "uniform-recheck", "exponential-margin4", "exponential-w16",
           "uniform-w16", "exponential-moments", "uniform-moments", "exponential-repair", "uniform-repair", "one-step-repair",
           "exponential-thin", "uniform-thin", "exponential-split", "one-step-channels", "uniform-channels",
           "exponential-channels", "random-thin", "tpe-thin", "optuna-gp-thin", "penalty-thin", "linear-thin",
           "reference-thin", "one-step-thin", "one-step-once-thin", "exponential-project-thin", "one-step-project-thin",
           "exponential-floor-thin", "exponential-floor-once-thin", "exponential-bn-thin", "exponential-final2-thin",
           "uniform-final2-thin", "exponential-bnfinal-thin", "uniform-bnfinal-thin",
           "exponential-soup2-bnfinal-thin", "uniform-soup2-bnfinal-thin", "one-step-soup2-bnfinal-thin",
           "reference-soup2-bnfinal-thin", "exponential-soup2-bnfinal-thin-guard", "random-soup2-bnfinal-thin",
           "tpe-soup2-bnfinal-thin", "penalty-soup2-bnfinal-thin", "linear-soup2-bnfinal-thin",
           "optuna-gp-soup2-bnfinal-thin", "exponential-soup2-bnfinal-thin-guard-capacity",
           "exponential-soup2-bnfinal-thin-retime-guard", "uniform-soup2-bnfinal-thin-retime",
           "one-step-soup2-bnfinal-thin-retime", "random-soup2-bnfinal-thin-retime", "tpe-soup2-bnfinal-thin-retime",
           "penalty-soup2-bnfinal-thin-retime", "optuna-gp-soup2-bnfinal-thin-retime",
           "linear-soup2-bnfinal-thin-retime", "reference-soup2-bnfinal-thin-retime",
           "exponential-soup2-bnfinal-thin-retime-guard-lastorig",
           "exponential-soup2-bnfinal-thin-retime-guard-lastorig-last24",
           "exponential-soup2-bnfinal-thin-retime-guard-lastorig-warm",
           "exponential-soup2-bnfinal-thin-retime-guard-lastorig-slack", "one-step-channels-slack"]
# exponential-la20: exponential with 20 look-ahead steps (the default was briefly 20; it is 50).
# *-recheck: the same settings, run after the pipeline gained its re-check before the final
# fine-tune (earlier rows of a method ran without it; a new name keeps both in the table).
# exponential-margin4: exponential with the 4 % minimum safety margin below latency bounds,
# the pipeline's default since the standard lat40 cell; in the cells that ran before it
# (`min_margin` in CELLS) every other method keeps the 2 % its rows ran with, so a cell's
# rows stay comparable. Cells without the key run every method with the 4 % default.
# *-w16: channel counts rounded to multiples of 16 (8 under 12; the default rounds to 8):
# on this AVX-512 machine widths between multiples of 16 ran no faster than the next one up.
# *-moments: the re-check and verification re-measure at 5 moments 10 s apart (`moments=5`;
# the pipeline's default was 1 then, which the cells that ran before it pin in CELLS).
# *-repair: the pipeline's defaults since session 8: 5 moments, the 4 % margin, and up to 2
# repairs (thin, fine-tune `step_epochs`, verify again) of a result that verification finds
# over its budget. The cells that ran before it pin `repairs: 0` (and their older margin and
# moments) in CELLS, so a method without the suffix keeps running what its rows ran.
# *-thin: the pipeline's defaults since session 10: the -repair settings, and a step whose best
# candidates miss on re-timing evaluates thinned variants of them (`step_thinning` 4) instead
# of taking the next-ranked one at once; the -repair rows ran without it (pinned to 0).
# *-split: the pipeline's defaults since session 12: steps in a space that mixes channels with
# prune / bits also start from the channels-first and weights-first split seeds
# (`split_seeds`); the two-constraint cell's earlier rows ran without them (pinned off).
# *-channels: channels + prune + bits, whatever the budget: in two-size every method beat
# size05's default (prune + bits, a size budget's default operators then) by 1.6-1.8 pt under
# a tighter budget; size05 with channels confirmed it, and a size budget's default operators
# are all three since session 14 (the size cells pin prune + bits for their older rows).
# random-thin, ..., reference-thin, one-step-thin: the other methods with the -thin settings, as
# rivals of exponential-thin in a cell run only with the current defaults (lat50 on machines B, C).
# one-step-once-thin (session 23): one step whose winner is fine-tuned once, after the only prune,
# for the whole budget (step_epochs 0, final_epochs + steps x step_epochs; a repair then thins
# without fine-tuning): +0.38 pt over one-step-thin in vgg lat40-small @C, -0.49 in lat50-small,
# so the pipeline keeps its step fine-tune.
MANY_SEEDS = {"exponential", "one-step", "uniform", "reference", "one-step-once-thin", "exponential-la20", "exponential-recheck",
              "uniform-recheck", "exponential-margin4", "exponential-w16", "uniform-w16", "exponential-moments",
              "uniform-moments", "exponential-repair", "uniform-repair", "exponential-thin", "uniform-thin",
              "exponential-split", "one-step-channels", "uniform-channels", "reference-thin", "one-step-thin",
              "exponential-project-thin", "one-step-project-thin", "exponential-floor-thin",
              "exponential-floor-once-thin", "exponential-bn-thin", "exponential-final2-thin", "uniform-final2-thin",
              "exponential-bnfinal-thin", "uniform-bnfinal-thin", "exponential-soup2-bnfinal-thin",
              "uniform-soup2-bnfinal-thin", "one-step-soup2-bnfinal-thin", "reference-soup2-bnfinal-thin",
              "exponential-soup2-bnfinal-thin-guard", "exponential-soup2-bnfinal-thin-guard-capacity",
              "exponential-soup2-bnfinal-thin-retime-guard", "uniform-soup2-bnfinal-thin-retime",
              "one-step-soup2-bnfinal-thin-retime", "reference-soup2-bnfinal-thin-retime",
              "exponential-soup2-bnfinal-thin-retime-guard-lastorig",
              "exponential-soup2-bnfinal-thin-retime-guard-lastorig-last24",
              "exponential-soup2-bnfinal-thin-retime-guard-lastorig-warm",
              "exponential-soup2-bnfinal-thin-retime-guard-lastorig-slack", "one-step-channels-slack"}
# one-step-channels-slack (session 57): `project_slack`, on by default since session 56 for every
# budget but measured only in latency cells, in cells of computed budgets (size; vgg size10-small and
# size05, resnet20 size10-small, sessions 57-59), where a move lands on the exact bound and
# costs no timing.
# *-slack (session 55, after -lastorig): every proposal of the sampler that meets its step's
# thresholds is moved along its line towards the original network to the last point that still
# meets them and scored there (`project_slack`); the moved proposal takes none of the budget.
# Motivated by H's vgg lat60-small, where final top-1 ranks with the shipped network's MACs
# (Spearman +0.83 over 69 runs) and the default's last step scored candidates of 2.09 M MACs
# on average under a threshold its best reached at 2.50 M.
# *-warm (session 54, after -lastorig): the last step's models start from the first step's
# evaluations and probes (`warm_start`): the same original network, proxy and measurements under a
# looser threshold, outside the last step's 12. Motivated as -last24: the last step's reach.
# *-last24 (session 54, after -lastorig): the last step evaluates 24 candidates and each earlier step
# 6 (`trials` 6, `last_trials` 24: the 36 evaluations of 3 x 12), as the earlier steps only lead to
# the path's seed. Motivated by H's vgg lat60-small over 12 seeds: one-step +0.06 pt ahead of
# -lastorig, the paired difference of shipped MACs ranking with the accuracy difference (Spearman
# +0.81); in the three seeds it lost by 0.5-0.95 pt its 8-12 candidates under the threshold reached
# 2.06-2.22 M MACs where one-step's 24-32 reached 2.39-3.04 M.
# *-lastorig (session 52, after the retimed guarded default): the last cooling step searches the
# original network afresh under the target (`last_step` original), seeded with the path's network
# thinned to meet it; its winner is fine-tuned for the whole path's step budget. Motivated by H's vgg
# lat60-small: one-step ahead of the default by +0.39 pt over 12 seeds, its networks holding more MACs
# under the same threshold than the cooled last step could reach from step 2's winner.
# *-retime (session 44, the pipeline's default since): a re-check or repair try whose miss rests on
# one slow moment (the bound holds with that moment left out) is re-timed once at fresh moments and
# judged on them alone (`retimes` 1); every row before ran with each miss final (`retimes` 0).
# Motivated by G's lat60-small: 12 of 42 runs were thinned by >= 0.25 of their range at the re-check
# (87.32 % against 89.60 %), in several because one moment of five timed 8-17 % slow. The guarded
# default is named with -guard last, so it is compared with the uniform rows of its settings.
# random / tpe / penalty / optuna-gp / linear / reference with -retime (session 45): the rivals of
# the -retime default in the cell it is judged on (session 44 re-ran only one-step there).
# *-guard (session 38, after -soup2-bnfinal-thin): the uniform guard (`uniform_guard`): a re-checked
# winner with no more MACs and no more parameters than the uniform path's network (what the
# uniform rows end on) is replaced by that network, trained as the uniform path trains it.
# Motivated by F's lat50 / lat50-small final networks (benchmarks/dominance.py): the 15 so
# dominated scored 0.23 pt under uniform's on average, the 15 others 0.13 above.
# *-soup2 (session 34, with -bnfinal -thin): two final fine-tunes averaged (`final_tries` 2,
# `final_merge` soup): soup.py measured +0.57 +- 0.09 pt over one re-estimated try. As rows (F):
# +0.66 / +0.52 pt over the first try in lat50-small (default / uniform), +0.02 / +0.02 in lat50
# (full fine-tunes); the pipeline's `final_tries: auto` since session 35 (2 with `finetune_samples`).
# one-step-soup2-bnfinal-thin / reference-soup2-bnfinal-thin (session 36): the rivals with those
# settings, judged against exponential-soup2-bnfinal-thin on the scoreboard (F: lat50-small, lat50).
# random-, tpe-, penalty-, linear-, optuna-gp-soup2-bnfinal-thin (session 40): the other rivals with
# those settings (3 seeds), first in F's lat40-small, where the guarded default led uniform in 5 of 5.
# *-capacity (session 41, after the guard): a step's near-tied candidates (proxy within 1 pt of the
# best, `tie_tolerance` 0.01) ranked by dense MACs (`tie_break` macs) instead of budget used. Motivated
# by F's lat40-small: every proxy ranked the boundary's networks backwards there, random candidates
# beat the GP's, and MACs tracked the final top-1 of the 24 cooled searches' networks (Spearman +0.61).
# *-bnfinal (session 34, with -thin): the final network's batch-norm statistics re-estimated after
# its fine-tune (`final_bn_batches` 40, the pipeline's default since): benchmarks/soup.py measured
# +0.71 +- 0.25 pt on the final fine-tunes of the ten -final2 runs (machine F, 4 tries each, every
# run ahead); not yet run as rows.
# *-final2 (session 34, with -thin): the final fine-tune runs twice from the same network with two
# seeds and the try with the better validation top-1 is kept (`final_tries=2`); its first try is
# the single fine-tune's, so each row also holds what one try would have given (`final_tries`).
# The hypothesis from benchmarks/redraw.py: in the small budget one network's final fine-tunes
# spread 0.7-1.4 pt (sd) by seed, and a run's unlucky seed cost it up to 3.4 pt (E seed 2).
# exponential-bn-thin (session 30): the -thin defaults with batch-norm re-estimation as the proxy
# (`proxy="bn"`, a fifth to a tenth of look-ahead-50's cost per candidate), the hypothesis from
# the proxy studies: on resnet20 it ranked networks better than look-ahead-50 in 3 of 5
# non-degenerate studies. In the search it ended behind on both networks (lat50-small @D).
# *-floor / *-floor-once (session 26, with -thin): a run whose most compressed network misses the
# last step's threshold at the start does not search (`floor_path`): each step takes the uniform
# configuration (`uniform`, the default since) or the floor is taken at once and fine-tuned for
# the whole budget (`once`). In vgg lat40-small @D every run of every method ends on the floor's
# widths; uniform's path beat the search's in 5 of 5 seeds (+0.71 pt), once's by +0.14.
# *-project (session 24, with -thin): a proposal over the step threshold is projected along its
# line towards the most compressed configuration onto the boundary (`project_misses`) and scored
# there: in vgg lat40-small @C one-step spent 25 of its 36 proposals on configurations the
# budget skipped (2.1-3.9 ms against 1.65 ms), while the headroom study, which puts random
# directions on the boundary by bisection, found configurations 1.3 pt better than the runs'.
# a method re-run with a later pipeline or another setting: its own goal line, not a rival
VARIANTS: dict[str, dict[str, Any]] = {
    "-recheck": {},
    "-margin4": {"min_margin": 0.04},
    "-w16": {"round_to": 16},
    "-moments": {"moments": 5, "moment_seconds": 10.0},
    "-repair": {"min_margin": 0.04, "moments": 5, "moment_seconds": 10.0, "repairs": 2, "step_thinning": 0},
    "-thin": {"min_margin": 0.04, "moments": 5, "moment_seconds": 10.0, "repairs": 2, "step_thinning": 4,
              "project_misses": False, "floor_path": "search"},
    "-split": {"split_seeds": True},
    "-channels": {"operators": ["channels", "prune", "bits"]},
    "-project": {"project_misses": True},
    "-floor-once": {"floor_path": "once"},
    "-floor": {"floor_path": "uniform"},
    "-bn": {"proxy": "bn"},
    "-final2": {"final_tries": 2, "final_merge": "best"},
    "-soup2": {"final_tries": 2, "final_merge": "soup"},
    "-bnfinal": {"final_bn_batches": 40},
    "-guard": {"uniform_guard": True},
    "-capacity": {"tie_break": "macs", "tie_tolerance": 0.01},
    "-retime": {"retimes": 1},
    "-lastorig": {"last_step": "original"},
    "-last24": {"trials": 6, "last_trials": 24},  # the 36 evaluations of SEARCH, 24 of them in the last step
    "-warm": {"warm_start": True},
    "-slack": {"project_slack": True},
}
# the methods a name starts with before its suffixes (``VARIANTS``)
BASE_METHODS = ("exponential", "one-step-once", "one-step", "uniform", "reference", "linear", "penalty", "random", "tpe",
                "optuna-gp")
# pipeline settings a cell pins to what its older rows ran with
PINNED = ("min_margin", "moments", "repairs", "step_thinning", "split_seeds", "operators", "project_misses",
          "floor_path")
# every cell below ran its rows without projection (`project_misses`, session 24) and searched at
# the floor (`floor_path`, session 26): pinned so, so a method without the -project / -floor
# suffix keeps running what its rows ran whatever the default
RERUNS = tuple(VARIANTS)
CELLS: dict[str, dict[str, Any]] = {
    "lat50": {"constraints": ["latency <= 0.5x"], "finetune": "standard", "project_misses": False, "floor_path": "search", "moments": 1, "repairs": 0, "step_thinning": 0},
    "lat40": {"constraints": ["latency <= 0.4x"], "finetune": "standard", "project_misses": False, "floor_path": "search", "min_margin": 0.02, "moments": 1,
              "repairs": 0, "step_thinning": 0},
    "lat40-small": {"constraints": ["latency <= 0.4x"], "finetune": "small", "project_misses": False, "floor_path": "search", "min_margin": 0.02, "moments": 1,
                    "repairs": 0, "step_thinning": 0},
    # the small fine-tune where lat40-small is tight (machine C: resnet20's floor 0.35-0.41x); no pins
    # but projection's: it ran only with the -thin settings
    "lat50-small": {"constraints": ["latency <= 0.5x"], "finetune": "small", "project_misses": False, "floor_path": "search"},
    # where resnet20's floor is 0.5x (machine G: 0.51x of dense at the narrowest), the bound ~1.2x over
    # the floor that lat40-small is on F; it ran only with the -thin settings, so no pins but projection's
    "lat60-small": {"constraints": ["latency <= 0.6x"], "finetune": "small", "project_misses": False, "floor_path": "search"},
    "two": {"constraints": ["latency <= 0.5x", "size <= 0.1x"], "finetune": "standard", "project_misses": False, "floor_path": "search", "split_seeds": False},
    # size binds, latency asks for some channels: the split seeds differ (weights-first keeps weights, thins channels)
    "two-size": {"constraints": ["latency <= 0.8x", "size <= 0.05x"], "finetune": "standard", "project_misses": False, "floor_path": "search", "split_seeds": False},
    # the size cells ran with a size budget's default operators before channels joined them (session 14)
    "size05": {"constraints": ["size <= 0.05x"], "finetune": "standard", "project_misses": False, "floor_path": "search", "operators": ["prune", "bits"]},
    "size10-small": {"constraints": ["size <= 0.1x"], "finetune": "small", "project_misses": False, "floor_path": "search", "moments": 1, "repairs": 0,
                     "step_thinning": 0, "operators": ["prune", "bits"]},
    "lat25": {"constraints": ["latency <= 0.25x"], "finetune": "standard", "project_misses": False, "floor_path": "search"},
    "lat15": {"constraints": ["latency <= 0.15x"], "finetune": "standard", "project_misses": False, "floor_path": "search"},
}
FINETUNE = {
    "standard": {"step_epochs": 1, "final_epochs": 3, "finetune_samples": None},
    "small": {"step_epochs": 1, "final_epochs": 1, "finetune_samples": 5000},
}
SEARCH = {"steps": 3, "trials": 12}
QUICK_SEARCH = {"steps": 3, "trials": 6}
LATENCY = {"backend": "onnxruntime", "batch_size": 32, "threads": 1}


def _machine() -> str:
    return f"{describe_machine()['cpu']}, {torch.get_num_threads()} torch threads"


EARLIER = "earlier"  # the machine of the rows written before rows recorded theirs (sessions 1-8)


# network -> test top-1 of its checkpoint where this machine's CPU ran the network before with
# another checkpoint (a fresh machine of a known CPU retrains it: resnet20 on C, 91.89 % in one
# session and 92.28 % in session 34); set by main, read by _fingerprint(network)
RETRAINED: dict[str, float] = {}


def _fingerprint(network: str | None = None) -> str:
    """This machine, as rows, dense entries and unreachable cells record it: the CPU model, its
    AVX-512 extensions and the torch threads. Latency ratios, and so which budgets are
    reachable, differ between CPUs (vgg's floor: 0.32x on the earlier machine, 0.45x on one
    with AVX-512 FP16), and a checkpoint retrained on another machine differs. With ``network``
    retrained on a CPU that ran it before (``RETRAINED``), the fingerprint names the new
    checkpoint: its entries pair with nothing of the first one's."""
    machine = describe_machine()
    model = machine["cpu"]
    avx512 = [f.removeprefix("avx512") for f in machine["avx512"]]
    text = f"{model}; avx512 {','.join(avx512) or 'none'}; {torch.get_num_threads()} threads"
    if network in RETRAINED:
        text += f"; {network} retrained to {100 * RETRAINED[network]:.2f} %"
    return text


def _note_checkpoint(results: dict[str, Any], network: str, top1: float) -> str:
    """This machine's fingerprint for ``network`` whose checkpoint has test top-1 ``top1``
    (fraction): where this CPU's first dense entry of ``network`` has another top-1, the
    checkpoint is a retrained one and is noted in ``RETRAINED``."""
    first = next((d["top1"] for d in results["dense"] if d["network"] == network and d["machine"] == _fingerprint()),
                 None)
    if first is not None and first != top1:
        RETRAINED[network] = top1
    else:
        RETRAINED.pop(network, None)
    return _fingerprint(network)


def _backfill(results: dict[str, Any]) -> dict[str, Any]:
    """Entries written before rows recorded their machine and base network: they all ran on one
    machine with one checkpoint per network (the first ``dense`` entry's top-1)."""
    base = {}
    for d in results["dense"]:
        d.setdefault("machine", EARLIER)
        base.setdefault(d["network"], d["top1"])
    for r in results["rows"]:
        r.setdefault("machine", EARLIER)
        r.setdefault("base_top1", base.get(r["network"]))
    for entry in [*results.get("unreachable", []), *results["headroom"], *results["proxy"]]:
        entry.setdefault("machine", EARLIER)
    for p in results["proxy"]:
        if p["spearman"] is not None and math.isnan(p["spearman"]):
            p["spearman"] = None  # written as NaN (not JSON) before
    return results


def _method_settings(method: str, search: dict[str, int], finetune: dict[str, Any],
                     pins: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """compress() settings of one method; ``pins``: the cell's (``PINNED`` keys are used), else
    the pipeline's defaults; a method's suffixes (``VARIANTS``, combinable) override both."""
    steps, trials = search["steps"], search["trials"]
    settings: dict[str, Any] = {**LATENCY, **finetune, "steps": steps, "trials": trials, "cooling": "exponential",
                                "sampler": "netbudget", "proxy": "lookahead", "proxy_steps": 50,
                                "remeasurements": 10, "round_to": 8,
                                # every row until session 34 kept the final fine-tune's batch-norm statistics
                                # and, until session 35, fine-tuned the final network once
                                "final_bn_batches": 0, "final_tries": 1,
                                # and, until session 38, shipped the search's network whatever the uniform one's size
                                "uniform_guard": False,
                                # and, until session 44, took every re-check miss as final
                                "retimes": 0,
                                # and, until session 52, compressed the path's network in the last step
                                "last_step": "path",
                                # and, until session 56, scored the sampler's proposals where they were
                                "project_slack": False,
                                **{k: v for k, v in (pins or {}).items() if k in PINNED}}
    while suffix := next((s for s in VARIANTS if method.endswith(s)), None):
        settings.update(VARIANTS[suffix])
        method = method.removesuffix(suffix)
    if method == "one-step":
        # the same evaluations and the same total fine-tuning in one step
        settings.update(cooling="one-step", trials=steps * trials, step_epochs=finetune["step_epochs"] * steps)
    elif method == "one-step-once":
        # one step whose winner is fine-tuned once, after the only prune, for the whole budget
        # (benchmarks/restart.py: one-step's networks restarted so gained 0.7-1.7 pt)
        settings.update(cooling="one-step", trials=steps * trials, step_epochs=0,
                        final_epochs=finetune["final_epochs"] + finetune["step_epochs"] * steps)
    elif method == "linear":
        settings["cooling"] = "linear"
    elif method in ("penalty", "uniform", "random", "tpe", "optuna-gp"):
        settings["sampler"] = method
    elif method == "reference":
        settings["proxy"] = "reference"
    elif method == "exponential-la20":
        settings["proxy_steps"] = 20
    return settings


def _load(path: Path) -> dict[str, Any]:
    if path.is_file():
        return _backfill(json.loads(path.read_text()))
    return {"machine": _machine(), "rows": [], "cells": [], "headroom": [], "dense": [], "proxy": []}


def _save(path: Path, results: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(path)


def _dense(network: str, model: torch.nn.Module, data) -> dict[str, Any]:
    from netbudget.metrics import LatencyConfig, measure_latency
    from netbudget.train import evaluate

    config = LatencyConfig(**LATENCY)
    values = [measure_latency(model, data.input_shape, config).value for _ in range(5)]
    return {"network": network, "top1": evaluate(model, data.test), "latency_ms": 1e3 * float(np.mean(values)),
            "latency_spread": float(np.std(values, ddof=1) / np.mean(values)), "batch_size": LATENCY["batch_size"],
            "machine": _fingerprint(network)}


def _mix_until_feasible(feasible: Callable[[np.ndarray], bool], point: np.ndarray,
                        dims: np.ndarray) -> tuple[np.ndarray, float]:
    """``point`` with its ``dims`` mixed towards 1 (most compressed) just far enough to be
    feasible (bisection, 1/64), and the fraction mixed (1.0: only the corner of those dims
    was found feasible); the point with those dims at 1 must be feasible."""
    low, high = 0.0, 1.0
    for _ in range(6):
        mid = 0.5 * (low + high)
        trial = point.copy()
        trial[dims] += mid * (1.0 - trial[dims])
        if feasible(trial):
            high = mid
        else:
            low = mid
    out = point.copy()
    out[dims] += high * (1.0 - out[dims])
    return out, high


def _split_positions(feasible: Callable[[np.ndarray], bool], groups: list[np.ndarray], n: int,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` random positions of a cell that mixes channels with prune / bits, one kind of
    operator at a time (a random version of the pipeline's split seeds): from a random start,
    the first group (channels in even draws, the weights in odd ones) is mixed towards the
    corner just far enough to be feasible with the other group at its most compressed, then
    the other group from its random start, given the first. Mixing every dimension together
    compresses the weights far past what a size budget needs where latency binds."""
    dims = sum(len(g) for g in groups)
    positions = []
    for i in range(n):
        first, second = groups if i % 2 == 0 else groups[::-1]
        start = rng.uniform(size=dims)
        corner = start.copy()
        corner[second] = 1.0
        point, _ = _mix_until_feasible(feasible, corner, first)
        point[second] = start[second]
        positions.append(_mix_until_feasible(feasible, point, second)[0])
    return positions


def _headroom_positions(feasible: Callable[[np.ndarray], bool], dims: int, n: int,
                        rng: np.random.Generator, sweeps: int = 2,
                        groups: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Unit-cube positions of a headroom study (0 = uncompressed, 1 = most compressed; the
    corner must be feasible): first the uniform position (the smallest shared one that is
    feasible, to 1/64), then ``n`` random ones: a random start mixed towards the corner until
    feasible. Where that lands on the corner itself (a budget only the corner's neighbourhood
    meets, as ``size <= 0.05x``: every mix collapsed to the same network), the position is
    drawn by coordinate-wise sampling of the feasible region instead, from the uniform
    position: ``sweeps`` passes over the dimensions in random order, each redrawn uniformly
    between its smallest feasible value (bisection, 1/64) and 1 given the others. ``groups``
    (channel dims, weight dims) of a mixed cell: the random ones by ``_split_positions``."""
    positions = []
    if groups is not None:
        uniform = _headroom_positions(feasible, dims, 0, rng, sweeps)
        return uniform + _split_positions(feasible, groups, n, rng)
    for i in range(n + 1):
        start = np.zeros(dims) if i == 0 else rng.random(dims)  # 0: uniform
        if feasible(start):
            positions.append(start)
            continue
        mixed, high = _mix_until_feasible(feasible, start, np.arange(dims))  # towards the most compressed corner
        if i == 0 or high < 1.0:
            positions.append(mixed)
            continue
        point = positions[0].copy()
        for _ in range(sweeps):
            for j in rng.permutation(dims):
                low, high = 0.0, point[j]  # point[j] is feasible; the smallest feasible value lies below
                for _ in range(6):
                    trial = point.copy()
                    trial[j] = 0.5 * (low + high)
                    if feasible(trial):
                        high = trial[j]
                    else:
                        low = trial[j]
                point[j] = rng.uniform(high, 1.0)
        positions.append(point)
    return positions


def _read_cache(path: Path | None, key: dict[str, Any]) -> dict[str, Any]:
    """A study's saved JSON if it was made under ``key``, else ``{}``."""
    saved = json.loads(path.read_text()) if path is not None and path.is_file() else {}
    return saved if saved.get("key") == key else {}


def _kept_positions(saved: list[np.ndarray], n: int, draw: Callable[[], list[np.ndarray]]) -> list[np.ndarray]:
    """The ``n + 1`` positions of a study: those an earlier study of the same settings drew are
    kept (latency ones depend on the timings of their draw), ``draw()`` supplies the rest."""
    return saved[: n + 1] if len(saved) >= n + 1 else [*saved, *draw()[len(saved):]]


def _cached_points(path: Path | None, key: dict[str, Any], positions: list[np.ndarray],
                   compute: Callable[[np.ndarray], dict[str, Any]]) -> list[dict[str, Any]]:
    """``compute(position)`` for each position, each result saved to ``path`` (JSON, with the
    positions) as it is done: a study stopped half-way redoes only the positions it had not
    finished. A saved result is reused only under the same ``key`` (the study's settings) and
    the same position (to 1e-9)."""
    saved = _read_cache(path, key)
    done = saved.get("points", [])
    points = []
    for position in positions:
        hit = next((p for p in done if np.allclose(p["position"], position, rtol=0.0, atol=1e-9)), None)
        points.append(hit if hit is not None else {"position": [float(x) for x in position], **compute(position)})
        if hit is None and path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            _save(path, {"key": key, "positions": [[float(x) for x in q] for q in positions],
                         "points": points + [p for p in done if p not in points]})
    return points


def _headroom_operators(cell: str) -> list[str]:
    """The default operators of ``cell``'s headroom study: the pipeline's defaults for its
    budgets when the cells ran (latency: channels; size: prune + bits; both: all three).
    ``--headroom-operators`` draws another study next to it (size05 over all three, session 15)."""
    metrics = {c.split()[0] for c in CELLS[cell.split(" @")[0]]["constraints"]}
    return ["channels"] if metrics == {"latency"} else ["prune", "bits"] if metrics == {"size"} else [
        "channels", "prune", "bits"]


def _construction(operators: list[str]) -> str:
    """How a headroom study over ``operators`` draws its random configurations: ``split`` (one
    kind of operator at a time, ``_split_positions``) where channels mix with prune / bits,
    else ``mix`` (every dimension towards the corner together)."""
    return "split" if "channels" in operators and len(operators) > 1 else "mix"


def _stale(stored: dict[str, Any] | None, operators: list[str], n: int) -> bool:
    """Whether ``--redo-headroom`` recomputes a stored study over ``operators``: it has fewer
    than ``n`` configurations or was drawn by another construction (studies before the split
    one record none: they mixed)."""
    return stored is not None and (stored["n"] < n or stored.get("construction", "mix") != _construction(operators))


def _parse_operators(text: str) -> list[str]:
    """``--headroom-operators`` (``channels,prune,bits``) as a list in the space's order."""
    from netbudget.space import OPERATORS

    chosen = [t.strip() for t in text.split(",") if t.strip()]
    if not chosen or set(chosen) - set(OPERATORS):
        raise SystemExit(f"--headroom-operators: expected a comma-separated subset of {', '.join(OPERATORS)}, "
                         f"got {text!r}")
    return [op for op in OPERATORS if op in chosen]


def _parse_names(flag: str, text: str, valid: list[str]) -> list[str]:
    """``--methods`` / ``--cells`` (comma-separated) as a list in the order given; a name the
    benchmark does not know stops here (a misspelt method would otherwise run as
    ``exponential`` under the typo and vanish from the tables)."""
    chosen = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in valid]
    if not chosen or unknown:
        raise SystemExit(f"{flag}: unknown {', '.join(map(repr, unknown)) or 'empty list'}; expected a "
                         f"comma-separated list of {', '.join(valid)}")
    return chosen


def _head_operators(entry: dict[str, Any]) -> list[str]:
    """The operators a headroom or proxy entry drew over (entries before session 15 record
    none: their cell's default)."""
    return entry.get("operators") or _headroom_operators(entry["cell"])


def _study_space(model, data, cell: str, operators: list[str] | None = None):
    """The search space a headroom study of ``cell`` draws its configurations in (``operators``,
    default the cell's; at most 80 % of a layer's channels removed); re-timing and confirming a
    study decode its positions in the same one."""
    from netbudget.space import build_space

    return build_space(model, data.input_shape, operators=operators or _headroom_operators(cell),
                       max_channel_ratio=0.8)


def _study_file(work: Path, network: str, cell: str, suffix: str = "") -> Path:
    """Where a headroom study of (network, cell) keeps its points beside the run directories;
    ``suffix`` names a study over other operators or a file derived from it (``-retimed``,
    ``-confirmed``)."""
    return work / f"{network}-{cell}-headroom{suffix}.json"


def _finetuned_top1(model, space, config, data, epochs: int, max_steps: int | None, seed: int) -> float:
    """Test top-1 (fraction) of ``config`` applied to ``model`` and fine-tuned as a headroom study
    fine-tunes its configurations: the run's total budget (``epochs``, at most ``max_steps``),
    distilled from ``model``, its compression kept, fine-tuning seed ``seed``."""
    from netbudget.compress import compress as apply_config
    from netbudget.pipeline.run import _inherit_compression
    from netbudget.train import FitConfig, evaluate, fine_tune

    candidate = apply_config(model, space, config)
    _inherit_compression(candidate)
    fine_tune(candidate, data.train, FitConfig(epochs=epochs, lr=0.01, seed=seed, max_steps=max_steps),
              teacher=model, progress=False)
    return evaluate(candidate.module, data.test)


def _headroom(network: str, cell: str, model, data, n: int, finetune: dict[str, Any], steps: int,
              seed: int = 0, cache: Path | None = None,
              operators: list[str] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Random bounded feasible configurations + uniform, fine-tuned; proxy scores of each.
    ``cache``: a JSON file keeping each finished configuration, so an interrupted study resumes.
    ``operators``: those the configurations draw (default: ``_headroom_operators(cell)``)."""
    from netbudget.compress import compress as apply_config
    from netbudget.constraints import parse_constraints
    from netbudget.exceptions import UnreachableBudgetError
    from netbudget.metrics import LatencyConfig, MeasureContext, measure
    from netbudget.proxy import ProxyConfig, score
    from netbudget.train import evaluate

    spec = CELLS[cell]
    operators = operators or _headroom_operators(cell)
    constraints = parse_constraints(spec["constraints"])
    space = _study_space(model, data, cell, operators)
    ctx = MeasureContext(input_shape=data.input_shape, latency=LatencyConfig(**LATENCY), reference=model)
    original = {c.key: measure(model, c, ctx).value for c in constraints}
    margin = spec.get("min_margin", 0.04)  # the cell's latency margin, as its runs search
    bounds = {c.key: c.resolve(original[c.key]).bound * (1 - margin if c.metric == "latency" else 1.0)
              for c in constraints}

    def feasible(position: np.ndarray) -> bool:
        module = apply_config(model, space, space.decode(position)).module
        for c in constraints:
            m = measure(module, c, ctx)
            value = m.ratio * original[c.key] if m.ratio is not None else m.value
            if value > bounds[c.key]:
                return False
        return True

    if not feasible(np.ones(len(space))):
        raise UnreachableBudgetError(f"{network} {cell}: even the most compressed configuration misses the budget")
    epochs = finetune["final_epochs"] + finetune["step_epochs"] * steps
    max_steps = None if finetune["finetune_samples"] is None else math.ceil(finetune["finetune_samples"] / 128) * epochs
    key = {"network": network, "cell": cell, "constraints": list(spec["constraints"]), "epochs": epochs,
           "max_steps": max_steps, "seed": seed, "machine": _fingerprint(network)}
    if operators != _headroom_operators(cell):  # the key of a default study stays what it was
        key["operators"] = operators
    groups = None
    if _construction(operators) == "split":  # a mixed cell: one kind of operator at a time
        groups = [np.array([i for i, d in enumerate(space.dimensions) if (d.operator == "channels") == channels])
                  for channels in (True, False)]
        key["construction"] = "split"
    saved = [np.asarray(q) for q in _read_cache(cache, key).get("positions", [])]
    positions = _kept_positions(saved, n, lambda: _headroom_positions(feasible, len(space), n,
                                                                      np.random.default_rng(seed), groups=groups))
    names = ("reference", "bn", "lookahead-20", "lookahead-50", "lookahead-50-val")

    def point(position: np.ndarray) -> dict[str, Any]:
        """Test top-1 (fraction) after the fine-tune, each proxy's score and its seconds."""
        config = space.decode(position)
        scores, seconds = {}, {}
        for name, proxy in (("reference", ProxyConfig(fidelity="reference")), ("bn", ProxyConfig(fidelity="bn")),
                            ("lookahead-20", ProxyConfig(fidelity="lookahead", lookahead_steps=20)),
                            ("lookahead-50", ProxyConfig(fidelity="lookahead", lookahead_steps=50))):
            candidate = apply_config(model, space, config)
            start = time.perf_counter()
            scores[name] = score(candidate, model, data.calibration, proxy, seed=seed)
            seconds[name] = time.perf_counter() - start
            if name == "lookahead-50":  # the same look-ahead, scored on held-out validation data instead
                scores["lookahead-50-val"] = evaluate(candidate.module, data.val)
                seconds["lookahead-50-val"] = time.perf_counter() - start
        top1 = _finetuned_top1(model, space, config, data, epochs, max_steps, seed)
        return {"top1": top1, "scores": scores, "seconds": seconds}

    points = _cached_points(cache, key, positions, point)
    accuracies = [p["top1"] for p in points]
    proxies = {name: [p["scores"][name] for p in points] for name in names}
    seconds = {name: sum(p["seconds"][name] for p in points) for name in names}
    from scipy.stats import spearmanr

    head = {"network": network, "cell": cell, "uniform_top1": accuracies[0],
            "oracle_best_top1": max(accuracies), "oracle_mean_top1": float(np.mean(accuracies)), "n": len(accuracies),
            "top1": accuracies, "construction": _construction(operators), "operators": operators}
    proxy_rows = [{"network": network, "cell": cell, "fidelity": name,
                   # None (JSON null): a proxy that scored every configuration alike ranks nothing
                   "spearman": float(spearmanr(values, accuracies).statistic) if len(set(values)) > 1 else None,
                   "seconds": seconds[name] / len(positions), "operators": operators}
                  for name, values in proxies.items()]
    return head, proxy_rows


RETIME = {"moments": 5, "per_moment": 2, "pause": 10.0, "confidence": 0.95, "margin": 0.04}


def _stored_file(cache: Path, network: str, cell: str, flag: str) -> dict[str, Any]:
    """The saved JSON of a headroom study (its ``key``, ``positions`` and ``points``) that ``flag``
    works on; stops naming the flag where the study was never run."""
    if not cache.is_file():
        raise SystemExit(f"{flag}: no headroom study of {network} {cell} at {cache}; run it first (--headroom 20)")
    return json.loads(cache.read_text())


def _retime(network: str, cell: str, model, data, cache: Path, out: Path | None = None,
            operators: list[str] | None = None, settings: Mapping[str, Any] = RETIME) -> dict[str, Any]:
    """A cell's stored headroom configurations re-timed as a run verifies its answer:
    ``per_moment`` latency ratios (interleaved with the dense network) at each of ``moments``
    moments ``pause`` seconds apart, judged by the one-sided upper confidence bound of the
    moments' means (the pipeline's ``_upper_confidence``). The study itself accepted a
    configuration from one timing; this says which of them a run could have verified.

    Returns ``{"upper_ratio": [...], "moment_means": [[...]], "bound", "threshold", ...}`` in
    the study's order (ratios of dense latency; ``threshold`` = the bound less the runs'
    ``margin``, what their re-check demands). ``out``: a JSON file keeping each re-timed
    configuration as it is done, so a stopped re-timing resumes."""
    from netbudget.compress import compress as apply_config
    from netbudget.constraints import parse_constraints
    from netbudget.metrics import LatencyConfig, MeasureContext, measure
    from netbudget.pipeline.run import _upper_confidence

    latency = [c for c in parse_constraints(CELLS[cell]["constraints"]) if c.metric == "latency"]
    if len(latency) != 1 or not latency[0].relative:
        raise SystemExit(f"--retime-headroom: cell {cell!r} has no relative latency budget to re-time "
                         f"(constraints {CELLS[cell]['constraints']})")
    positions = [np.asarray(q) for q in _stored_file(cache, network, cell, "--retime-headroom")["positions"]]
    constraint = latency[0]
    space = _study_space(model, data, cell, operators)
    ctx = MeasureContext(input_shape=data.input_shape, latency=LatencyConfig(**LATENCY), reference=model)
    bound = constraint.bound  # relative: a ratio of dense latency

    def point(position: np.ndarray) -> dict[str, Any]:
        module = apply_config(model, space, space.decode(position)).module
        moments = []
        for i in range(settings["moments"]):
            if i > 0 and settings["pause"] > 0:
                time.sleep(settings["pause"])
            moments.append([measure(module, constraint, ctx).ratio for _ in range(settings["per_moment"])])
        return {"upper_ratio": _upper_confidence(moments, settings["confidence"]),
                "moment_means": [float(np.mean(m)) for m in moments]}

    key = {"network": network, "cell": cell, "study": cache.name, "settings": dict(settings),
           "machine": _fingerprint(network)}
    points = _cached_points(out, key, positions, point)
    return {"upper_ratio": [p["upper_ratio"] for p in points], "moment_means": [p["moment_means"] for p in points],
            "bound": bound, "threshold": bound * (1 - settings["margin"]), **dict(settings)}


def _retime_line(head: dict[str, Any], method: str, mean_top1: float) -> str:
    """Goal line of a re-timed headroom study: how many configurations a run could have
    verified (upper bound within the re-check's threshold) and their accuracy against
    ``method``'s mean (percent)."""
    retimed = head["retimed"]
    held = [t for t, u in zip(head["top1"], retimed["upper_ratio"]) if u <= retimed["threshold"]]
    verified = sum(u <= retimed["bound"] for u in retimed["upper_ratio"])
    text = (f"  Re-timed as runs verify ({retimed['per_moment']} timings at each of {retimed['moments']} moments, "
            f"{100 * retimed['confidence']:.0f} % upper bound): {verified}/{head['n']} configurations within "
            f"{retimed['bound']:g}x, {len(held)}/{head['n']} within the re-check's {retimed['threshold']:.3g}x")
    if not held:
        return text + "; none a run could keep, so the headroom is not one a run can reach."
    best, mean = 100 * max(held), 100 * float(np.mean(held))
    return (text + f"; those {len(held)}: best {best:.2f} %, mean {mean:.2f} % ({method}'s mean "
            f"{mean_top1 - best:+.2f} pt from their best, {mean_top1 - mean:+.2f} pt from their mean).")


CONFIRM_TOP = 3  # networks of a study re-fine-tuned besides its uniform one: its best by the study's draws


def _confirm(network: str, cell: str, model, data, cache: Path, top1: list[float], seeds: int,
             out: Path | None = None, operators: list[str] | None = None, top: int = CONFIRM_TOP) -> dict[str, Any]:
    """A stored headroom study's uniform configuration and its ``top`` best other networks
    re-fine-tuned with ``seeds - 1`` more fine-tuning seeds than the study's own: the study
    fine-tuned each configuration once, so its best is the best of ``n`` noisy draws and its room
    above the uniform configuration is inflated by as much as the draws' luck. ``top1``: the study's
    accuracies (fractions) in its order, index 0 its uniform configuration.

    Returns ``{"index": [...], "seeds": [...], "top1": [[...]], "reproduced": x}`` (indices into
    the study, index 0 first; per index the test top-1 per seed, the first the study's own draw;
    ``reproduced``: the uniform configuration fine-tuned again with the study's seed, which
    shows the draws are repeatable). ``out``: a JSON file keeping each configuration as it is
    done, so a stopped confirmation resumes."""
    from netbudget.compress import compress as apply_config

    saved = _stored_file(cache, network, cell, "--confirm-headroom")
    positions, study = [np.asarray(q) for q in saved["positions"]], saved["key"]
    if len(positions) != len(top1):
        raise SystemExit(f"--confirm-headroom: the study at {cache} holds {len(positions)} configurations but its "
                         f"results {len(top1)}; finish it first (--headroom {len(top1) - 1})")
    space = _study_space(model, data, cell, operators)

    def built(position: np.ndarray) -> tuple:
        """What a position builds: its layers' shapes and its settings other than channel counts
        (positions past a layer's floor, or rounded to the same channel multiple, build one network)."""
        config = space.decode(position)
        shapes = tuple(tuple(q.shape) for q in apply_config(model, space, config).module.parameters())
        return shapes, tuple(round(config[d.name], 6) for d in space.dimensions if d.operator != "channels")

    index, seen = [0], {built(positions[0])}
    for i in sorted(range(1, len(top1)), key=lambda i: -top1[i]):  # the best distinct networks, uniform's aside
        if len(index) > top:
            break
        if (other := built(positions[i])) not in seen:
            index.append(i)
            seen.add(other)
    first = study["seed"]
    more = list(range(first + 1, first + seeds))

    def point(position: np.ndarray) -> dict[str, Any]:
        config = space.decode(position)
        return {"top1": [_finetuned_top1(model, space, config, data, study["epochs"], study["max_steps"], s)
                         for s in more]}

    key = {"network": network, "cell": cell, "study": cache.name, "seeds": more, "machine": _fingerprint(network)}
    points = _cached_points(out, key, [positions[i] for i in index], point)
    done = _read_cache(out, key)
    reproduced = done.get("reproduced")
    if reproduced is None:
        reproduced = _finetuned_top1(model, space, space.decode(positions[0]), data, study["epochs"],
                                     study["max_steps"], first)
        if out is not None:
            _save(out, {**done, "reproduced": reproduced})
    return {"index": index, "seeds": [first, *more], "reproduced": reproduced,
            "top1": [[top1[i], *p["top1"]] for i, p in zip(index, points)]}


def _confirmed_room(head: dict[str, Any]) -> tuple[float, float, int, int] | None:
    """A confirmed study's room on the means: the re-fine-tuned network with the highest mean
    over the seeds above the uniform configuration, paired by seed (mean, sd in points, seeds),
    and its position in ``confirmed`` (1 = the study's best draw); None where the study drew no
    other network than the uniform one."""
    top1 = head["confirmed"]["top1"]
    if len(top1) < 2:
        return None
    best = 1 + int(np.argmax([np.mean(t) for t in top1[1:]]))
    mean, sd, n = _spread([100 * (b - u) for b, u in zip(top1[best], top1[0])])
    return mean, sd, n, best


def _confirm_line(head: dict[str, Any], method: str, mean_top1: float) -> str:
    """Goal line of a confirmed headroom study: the uniform configuration and the study's best
    other networks over more fine-tuning seeds, the room on the means and ``method``'s mean
    (percent) from it."""
    confirmed = head["confirmed"]
    means = [100 * float(np.mean(t)) for t in confirmed["top1"]]
    seeds = confirmed["seeds"]
    text = (f"  Re-fine-tuned with {len(seeds)} seeds ({seeds[0]}-{seeds[-1]}, the first the study's own; it "
            f"reproduces {100 * confirmed['reproduced']:.2f} % for the study's {100 * confirmed['top1'][0][0]:.2f} %): "
            f"the uniform configuration {100 * confirmed['top1'][0][0]:.2f} -> {means[0]:.2f} % on the mean")
    found = _confirmed_room(head)
    if found is None:
        return text + "; the study drew no other network."
    room, sd, _, best = found
    draws = ", ".join(f"{100 * t[0]:.2f} -> {m:.2f}" for t, m in zip(confirmed["top1"][1:], means[1:]))
    half = "at least" if mean_top1 - means[0] >= room / 2 else "under"
    others = f"{len(means) - 1} other networks" if len(means) > 2 else "other network"
    return (text + f", the study's best {others} {draws} %; room on the means {room:.2f} "
            f"+- {sd:.2f} pt (network {best} over uniform, paired); {method}'s mean {mean_top1 - means[0]:+.2f} pt "
            f"from the uniform configuration's mean ({half} half of that room).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="vgg, lat40-small, 3 methods, 1 seed, small search")
    parser.add_argument("--networks", default="vgg,resnet20")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--seeds", type=int, default=5, help="seeds of exponential/one-step/uniform/reference")
    parser.add_argument("--rival-seeds", type=int, default=3,
                        help="seeds of the other methods (at most --seeds): more where a rival's lead needs confirming")
    parser.add_argument("--headroom", type=int, default=20, help="random configurations per cell")
    parser.add_argument("--no-headroom", action="store_true")
    parser.add_argument("--headroom-operators", default=None,
                        help="operators the headroom study draws, comma-separated (default: the cell's budgets' "
                             "defaults when it ran; another set is a study of its own next to it)")
    parser.add_argument("--redo-headroom", action="store_true",
                        help="recompute a cell's headroom stored with fewer than --headroom configurations "
                             "or drawn by an older construction")
    parser.add_argument("--retime-headroom", action="store_true",
                        help="only re-time each cell's stored headroom configurations as runs verify (5 moments, "
                             "upper confidence bound) and store which a run could have kept; no runs")
    parser.add_argument("--confirm-headroom", type=int, default=0, metavar="N",
                        help="only re-fine-tune each cell's stored headroom study's uniform configuration and its "
                             f"{CONFIRM_TOP} best other networks with N fine-tuning seeds in all (the study's own and N-1 more) "
                             "and store them in the study; no runs")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    for flag, value in (("--seeds", args.seeds), ("--rival-seeds", args.rival_seeds)):
        if value < 1:
            raise SystemExit(f"{flag}: {value}; expected a number of seeds >= 1")
    if args.headroom_operators:
        _parse_operators(args.headroom_operators)  # a typo stops here, not after hours of runs
    if args.confirm_headroom == 1 or args.confirm_headroom < 0:
        raise SystemExit(f"--confirm-headroom: {args.confirm_headroom}; expected a number of fine-tuning seeds >= 2 "
                         f"(the study's own and at least one more)")
    if args.quick:
        networks, methods, cells, seeds, n_head = ["vgg"], ["exponential", "one-step", "uniform"], ["lat40-small"], 1, 4
        search = QUICK_SEARCH
    else:
        networks = args.networks.split(",")
        methods = _parse_names("--methods", args.methods, METHODS)
        cells = _parse_names("--cells", args.cells, list(CELLS))
        seeds, n_head, search = args.seeds, args.headroom, SEARCH
    out = args.out or RESULTS / ("ablation_quick.json" if args.quick else "ablation.json")
    from netbudget.data import load_dataset
    from netbudget.zoo import cache_dir, pretrained

    data = load_dataset("fashion-mnist", seed=0)
    results = _load(out)
    results["search"] = search
    work = cache_dir() / "ablation" / ("quick" if args.quick else "full")
    for cell in cells:
        entry = {"cell": cell, "constraints": CELLS[cell]["constraints"], "finetune_budget": CELLS[cell]["finetune"],
                 "finetune": FINETUNE[CELLS[cell]["finetune"]]}
        if entry not in results["cells"]:
            results["cells"].append(entry)
    from netbudget.exceptions import UnreachableBudgetError

    results.setdefault("unreachable", [])
    from netbudget.train import evaluate

    for network in networks:
        model = pretrained(network, "fashion-mnist")
        machine = _note_checkpoint(results, network, evaluate(model, data.test))
        if not any(d["network"] == network and d["machine"] == machine for d in results["dense"]):
            results["dense"].append(_dense(network, model, data))
            _save(out, results)
        for cell in cells:
            if args.retime_headroom:
                _retime_stored(results, out, work, network, cell, model, data)
                continue
            if args.confirm_headroom:
                _confirm_stored(results, out, work, network, cell, model, data, args.confirm_headroom)
                continue
            finetune = FINETUNE[CELLS[cell]["finetune"]]
            if any(u["network"] == network and u["cell"] == cell and u["machine"] == machine
                   for u in results["unreachable"]):
                continue  # reachability is the machine's: another CPU tries again
            try:
                _run_cell(args, results, out, work, network, cell, model, data, finetune, methods, seeds, n_head, search)
            except UnreachableBudgetError as error:
                print(f"[unreachable] {network} {cell}: {error}", flush=True)
                results["unreachable"].append({"network": network, "cell": cell, "message": str(error),
                                               "machine": machine})
                _save(out, results)
    write_markdown(out, results)


def _stored_study(results: dict[str, Any], out: Path, network: str, cell: str, flag: str) -> dict[str, Any]:
    """This machine's stored headroom study of (network, cell) over the cell's default operators,
    which ``flag`` works on; stops naming the flag where there is none."""
    machine = _fingerprint(network)
    head = next((h for h in results["headroom"] if h["network"] == network and h["cell"] == cell
                 and h.get("machine", EARLIER) == machine and _head_operators(h) == _headroom_operators(cell)), None)
    if head is None:
        raise SystemExit(f"{flag}: no headroom study of {network} {cell} on this machine in {out}; "
                         f"run it first (--headroom 20)")
    return head


def _retime_stored(results: dict[str, Any], out: Path, work: Path, network: str, cell: str, model, data) -> None:
    """``--retime-headroom``: re-time this machine's stored headroom study of (network, cell)
    over the cell's default operators and store the outcome in it as ``retimed``."""
    head = _stored_study(results, out, network, cell, "--retime-headroom")
    print(f"[retime] {network} {cell}: {head['n']} configurations", flush=True)
    head["retimed"] = _retime(network, cell, model, data, _study_file(work, network, cell),
                              out=_study_file(work, network, cell, "-retimed"))
    _save(out, results)


def _confirm_stored(results: dict[str, Any], out: Path, work: Path, network: str, cell: str, model, data,
                    seeds: int) -> None:
    """``--confirm-headroom N``: re-fine-tune this machine's stored headroom study of (network,
    cell) over the cell's default operators (``_confirm``) and store the outcome in it as ``confirmed``."""
    head = _stored_study(results, out, network, cell, "--confirm-headroom")
    print(f"[confirm] {network} {cell}: uniform + best {CONFIRM_TOP} of {head['n']} configurations, "
          f"{seeds} fine-tuning seeds", flush=True)
    head["confirmed"] = _confirm(network, cell, model, data, _study_file(work, network, cell), head["top1"],
                                 seeds, out=_study_file(work, network, cell, "-confirmed"))
    _save(out, results)


def _schedule(methods: list[str], seeds: int, rival_seeds: int) -> list[tuple[int, str]]:
    """(seed, method) runs of a cell, seed by seed: ``seeds`` of each ``MANY_SEEDS`` method, the
    first ``rival_seeds`` (at most ``seeds``) of the others."""
    return [(seed, method) for seed in range(seeds) for method in methods
            if method in MANY_SEEDS or seed < min(rival_seeds, seeds)]


def _run_cell(args, results, out, work, network, cell, model, data, finetune, methods, seeds, n_head, search) -> None:
    """Headroom, proxy study and every (method, seed) run of one (network, cell); rows saved as they finish."""
    from netbudget.pipeline import RunConfig
    from netbudget.pipeline.run import compress

    def mine(entry: dict[str, Any]) -> bool:
        return entry["network"] == network and entry.get("cell") == cell

    machine = _fingerprint(network)

    def here(entry: dict[str, Any]) -> bool:  # headroom and proxy studies are per machine, as rows are
        return mine(entry) and entry.get("machine", EARLIER) == machine

    operators = _parse_operators(args.headroom_operators) if args.headroom_operators else _headroom_operators(cell)

    def study(entry: dict[str, Any]) -> bool:  # one headroom / proxy study per set of operators
        return here(entry) and _head_operators(entry) == operators

    stored = next((h for h in results["headroom"] if study(h)), None)
    # n counts the uniform configuration too
    if not args.no_headroom and (stored is None or (args.redo_headroom and _stale(stored, operators, n_head + 1))):
        print(f"[headroom] {network} {cell} n={n_head} operators={'+'.join(operators)}", flush=True)
        name = "" if operators == _headroom_operators(cell) else "-" + "+".join(operators)
        head, proxy_rows = _headroom(network, cell, model, data, n_head, finetune, search["steps"],
                                     cache=_study_file(work, network, cell, name), operators=operators)
        head["machine"] = machine
        proxy_rows = [{**p, "machine": machine} for p in proxy_rows]
        results["headroom"] = [h for h in results["headroom"] if not study(h)] + [head]  # replaced once it is done
        results["proxy"] = [p for p in results["proxy"] if not study(p)] + proxy_rows
        _save(out, results)
    for seed, method in _schedule(methods, seeds, args.rival_seeds):
        if any(r["network"] == network and r["cell"] == cell and r["method"] == method and r["seed"] == seed
               and r.get("machine", EARLIER) == machine for r in results["rows"]):
            continue  # done on this machine (another machine's row pairs with nothing here)
        print(f"[run] {network} {cell} {method} seed {seed}", flush=True)
        run_dir = work / f"{network}-{cell}-{method}-s{seed}"
        start = time.perf_counter()
        settings = _method_settings(method, search, finetune, CELLS[cell])
        result = compress(model, data, CELLS[cell]["constraints"], run_dir=run_dir, progress=False,
                          seed=seed, **settings)
        results["rows"].append({
            "network": network, "cell": cell, "method": method, "seed": seed,
            "final_top1": result.summary["accuracy"]["final"], "feasible": result.feasible,
            # the base network's test top-1: a checkpoint retrained on another machine differs
            "base_top1": result.summary["accuracy"]["original"], "machine": machine,
            "evaluations": result.summary["evaluations"], "seconds": result.summary["seconds"],
            "wall_seconds": time.perf_counter() - start,
            "ratios": {c["text"]: c["ratio"] for c in result.summary["constraints"]},
            "upper_confidence": {c["text"]: c["upper_confidence"] / c["original"]
                                 for c in result.summary["constraints"]},
            # how far the re-check before the final fine-tune thinned the winner (None: no re-check)
            "recheck_position": (result.summary.get("recheck") or {}).get("position"),
            # its tries re-timed because one slow moment explained their miss (`retimes`)
            "recheck_retimes": sum(1 for t in (result.summary.get("recheck") or {}).get("tries", []) if t.get("retime")),
            "min_margin": settings.get("min_margin", RunConfig.min_margin),
            "round_to": result.summary["round_to"],
            "operators": RunConfig.read(run_dir / "run.yaml").operators,
            "moments": result.summary["moments"],
            # repairs after a verification miss (thin, fine-tune, verify again); 0 when none ran
            "repairs": len(result.summary.get("repairs") or []),
            # budgets warned as within two safety margins of the reachable floor
            "warnings": len(result.summary.get("warnings") or []),
            # thinned variants of candidates that missed on re-timing, over all steps
            "thinned": sum(len(s.get("thinned") or []) for s in result.summary["steps"]),
            # with final_tries > 1: each try's seed, validation and test top-1 and whether it was kept
            "final_tries": result.summary.get("final_tries") or [],
            # the uniform guard's comparison (`applied`, MACs and parameters of both); None when off
            "guard": result.summary.get("guard"),
        })
        _save(out, results)


def _paired(rows: list[dict], method: str, base: str = "uniform") -> tuple[float, float, int]:
    """Mean and sd of ``method`` - ``base`` in final top-1 (points) over the seeds both ran on the
    same base network and machine, and how many."""
    return _spread(_diffs(rows, method, base))


def _spread(diffs: list[float]) -> tuple[float, float, int]:
    """Mean and sd (nan under two) of paired differences, and how many. A mean within 1e-9 pt of
    zero is zero: top-1 moves in steps of 0.01 pt (10,000 test images), so a tie sums to a float
    residue whose sign depends on the direction of the subtraction (resnet20 `size10-small @G`,
    session 59: -2.2e-15 one way, +2.2e-15 the other) and would decide whether a rival is
    "ahead" or a default below uniform; a tie reads +0.00, is not ahead and is not below."""
    if not diffs:
        return math.nan, math.nan, 0
    mean = float(np.mean(diffs))
    mean = 0.0 if abs(mean) < 1e-9 else mean
    return mean, float(np.std(diffs, ddof=1)) if len(diffs) > 1 else math.nan, len(diffs)


def _diffs(rows: list[dict], method: str, base: str) -> list[float]:
    """``method`` - ``base`` in final top-1 (points), one per seed both ran on the same base
    network and machine."""
    def key(r: dict) -> tuple:
        return r["seed"], r.get("base_top1"), r.get("machine", EARLIER)

    by_seed = {key(r): r["final_top1"] for r in rows if r["method"] == base}
    return [100 * (r["final_top1"] - by_seed[key(r)]) for r in rows if r["method"] == method and key(r) in by_seed]


def _cooling_lines(results: dict[str, Any], labels: dict[str, str], suffix: str, title: str) -> list[str]:
    """Cooling against one step: every cell with a measured budget that ran both
    ``exponential<suffix>`` and ``one-step<suffix>``, their paired difference, in how many seeds
    one step led, each against ``uniform<suffix>``, and the differences pooled over all paired
    seeds (computed budgets are left out: there ``cooling='auto'`` takes one step already)."""
    exponential, one_step, uniform = (f"{m}{suffix}" for m in ("exponential", "one-step", "uniform"))
    head = ["", f"## Cooling or one step ({title})", "",
            ("| network | cell | paired seeds | one-step minus exponential (pt) | one step ahead | "
             "exponential minus uniform | one-step minus uniform |"),
            "|---|---|---:|---:|---:|---:|---:|"]
    lines, pooled, cells_ahead = [], [], 0
    for network, cell in sorted({(r["network"], _where(r, labels)) for r in results["rows"] if not _computed(r["cell"])}):
        rows = [r for r in results["rows"] if r["network"] == network and _where(r, labels) == cell]
        diffs = _diffs(rows, one_step, exponential)
        if not diffs:
            continue
        pooled += diffs
        spread = _spread(diffs)  # a tie is level here too, not a float residue's sign
        cells_ahead += spread[0] > 0
        versus = [_paired_text(*_paired(rows, m, base=uniform)) for m in (exponential, one_step)]
        lines.append(f"| {network} | {cell} | {len(diffs)} | {_paired_text(*spread)} | "
                     f"{sum(d > 0 for d in diffs)} of {len(diffs)} | {versus[0]} | {versus[1]} |")
    if not pooled:
        return []
    mean, sd, n = _spread(pooled)
    cells = len(lines)
    spread = f" +- {sd:.2f} (standard error {sd / math.sqrt(n):.2f})" if n > 1 else ""
    return [*head, *lines, "",
            (f"Pooled over {n} paired seeds in {cells} cell(s): one-step minus exponential = "
             f"{mean:+.2f}{spread} pt; one step ahead in {sum(d > 0 for d in pooled)} of {n} seeds "
             f"and in {cells_ahead} of {cells} cells (seeds pair only within a cell).")]


def _paired_text(diff: float, sd: float, n: int) -> str:
    if n == 0:
        return ""
    return f"{diff:+.2f}" + (f" +- {sd:.2f}" if not math.isnan(sd) else "")


def _rerun_line(rows: list[dict], suffix: str, title: str, versus: str, bases: dict[str, str]) -> str:
    """Goal line of ``exponential`` / ``uniform`` re-run as ``<method><suffix>``: their paired
    difference, each against ``bases[method]`` (the rows it re-runs), and feasibility."""
    diff, sd, n = _paired(rows, f"exponential{suffix}", base=f"uniform{suffix}")
    gains = []
    for m in ("exponential", "uniform"):
        gain, gain_sd, k = _paired(rows, f"{m}{suffix}", base=bases[m])
        if k:
            gains.append(f"{m} {_paired_text(gain, gain_sd, k)} pt over {k}")
    again = [r["feasible"] for r in rows if r["method"].endswith(suffix)]
    against = f"; minus {versus}: {', '.join(gains)}" if gains else ""
    return (f"  {title}: exponential - uniform = {_paired_text(diff, sd, n) or 'n/a'} pt over {n} paired seeds "
            f"({'met' if diff >= 0 else 'MISSED'}){against}; feasible "
            f"{sum(again)}/{len(again)} runs ({'met' if all(again) else 'MISSED'}).")


def _repair_line(rows: list[dict]) -> str:
    """Goal line of the ``-repair`` rows: the pipeline's current defaults."""
    mine = [r for r in rows if r["method"].endswith("-repair")]
    repaired = sum(r.get("repairs", 0) > 0 for r in mine)
    tight = sum(r.get("warnings", 0) > 0 for r in mine)
    return _rerun_line(rows, "-repair", "With 5 moments, 4 % margin, up to 2 repairs (the defaults of sessions 8-9; "
                       f"{repaired} run(s) repaired, {tight} warned of a tight budget)", "the cell's older settings",
                       {"exponential": "exponential", "uniform": "uniform"})


def _room(head: dict[str, Any], top1: float) -> tuple[float, float]:
    """A headroom study's room (its best configuration above its one-shot uniform one) and how
    much of it a mean final top-1 of ``top1`` captured, both in points."""
    return 100 * (head["oracle_best_top1"] - head["uniform_top1"]), top1 - 100 * head["uniform_top1"]


def _room_goal(head: dict[str, Any], top1: float, over_runs: tuple[float, float, int]) -> tuple[str, str]:
    """The headroom goal for a default whose mean final top-1 is ``top1`` (percent) and whose paired
    difference with the uniform runs of its settings is ``over_runs`` (``_paired``): a description
    and the verdict. Met where the room is >= 1 pt and the default is half of it above the study's
    one-shot uniform configuration *and* above the uniform runs (a run fine-tunes between steps and
    can end well above the one-shot network of its ratio; the floor path is the uniform run), or
    reaches the study's best configuration."""
    room, captured = _room(head, top1)
    runs, _, n = over_runs
    above_best = top1 >= 100 * head["oracle_best_top1"]
    text = (f"{room:.2f} pt, {captured:+.2f} captured" + (f", {runs:+.2f} over the uniform runs" if n else "")
            + (", at or above its best" if above_best else ""))
    if room < 1:
        return text, "n/a (under 1 pt)"
    half = captured >= room / 2 and (n == 0 or runs >= room / 2)
    return text, "met" if above_best or half else "MISSED"


def _headroom_line(head: dict[str, Any], method: str, mean_top1: float, over_runs: tuple[float, float, int],
                   over: str = "") -> str:
    """Goal line of a cell's headroom study: how much of it ``method``'s mean (percent) captured,
    ``over_runs`` its paired difference with the uniform runs of its settings; ``over``: the
    operators the study drew, where they are not the cell's default ones."""
    room, captured = _room(head, mean_top1)
    _, goal = _room_goal(head, mean_top1, over_runs)
    verdict = ("no goal: the headroom is under 1 pt" if goal.startswith("n/a") else
               f"{goal}: at least half where the headroom is >= 1 pt, above the uniform runs too, or its best reached")
    runs = f" and {over_runs[0]:+.2f} pt from the uniform runs over {over_runs[2]} paired seeds" if over_runs[2] else ""
    line = (f"  Headroom{over} above the (one-shot) uniform configuration {room:.2f} pt ({head['n']} configurations); "
            f"{method}'s mean is {captured:+.2f} pt from it{runs} ({verdict}).")
    if "retimed" in head:
        line += "\n" + _retime_line(head, method, mean_top1)
    return line + "\n" + _confirm_line(head, method, mean_top1) if "confirmed" in head else line


def _thin_line(rows: list[dict]) -> str:
    """Goal line of the ``-thin`` rows: the pipeline's current defaults, against the ``-repair``
    rows (the same settings without thinned variants of missed candidates)."""
    mine = [r for r in rows if r["method"].endswith("-thin")]
    thinned = sum(r.get("thinned", 0) for r in mine)
    repaired = sum(r.get("repairs", 0) > 0 for r in mine)
    return _rerun_line(rows, "-thin", "With thinned variants of candidates that miss on re-timing (the current "
                       f"defaults, `floor_path` search; {thinned} variant(s) over {len(mine)} runs, {repaired} run(s) repaired)",
                       "the -repair rows", {"exponential": "exponential-repair", "uniform": "uniform-repair"})


def _floor_line(rows: list[dict]) -> str:
    """Goal line of ``exponential-floor-thin`` (the current defaults since session 26: a run
    whose floor misses the searched bound walks the uniform path without a search): against
    ``uniform-thin``, against searching (``exponential-thin``) and the floor at once
    (``exponential-floor-once-thin``), and feasibility."""
    diff, sd, n = _paired(rows, "exponential-floor-thin", base="uniform-thin")
    others = []
    for m, what in (("exponential-thin", "searching"), ("exponential-floor-once-thin", "the floor at once")):
        d, s, k = _paired(rows, "exponential-floor-thin", base=m)
        if k:
            others.append(f"minus {what} {_paired_text(d, s, k)} pt over {k}")
    again = [r["feasible"] for r in rows if r["method"] == "exponential-floor-thin"]
    return (f"  At the floor without a search (the current defaults since session 26, `floor_path` uniform): "
            f"exponential-floor - uniform = {_paired_text(diff, sd, n) or 'n/a'} pt over {n} paired seeds "
            f"({'met' if diff >= 0 else 'MISSED'}){'; ' if others else ''}{'; '.join(others)}; feasible "
            f"{sum(again)}/{len(again)} runs ({'met' if all(again) else 'MISSED'}).")


def _rivals_lines(rows: list[dict], mean: dict[str, float], suffix: str) -> list[str]:
    """Goal line of ``exponential<suffix>`` against every other method run with the same
    settings (``random<suffix>``, ...; not ``uniform<suffix>``, which has its own line): those
    ahead in paired mean, with the spread and how many seeds; none when no rival ran."""
    default = f"exponential{suffix}"
    rivals = {m: _paired(rows, m, base=default) for m in mean
              if m.endswith(suffix) and m not in (default, f"uniform{suffix}")}
    if not rivals:
        return []
    ahead = [f"{m} ({_paired_text(d, s, k)} pt over {k})" for m, (d, s, k) in rivals.items() if k and d > 0]
    behind = [f"{m} {_paired_text(d, s, k)}" for m, (d, s, k) in rivals.items() if k and d <= 0]
    return [f"  Methods ahead of {default} (paired): {', '.join(ahead) or 'none'} "
            f"({'met' if not ahead else 'MISSED'})" + (f"; behind it (pt): {', '.join(behind)}" if behind else "") + "."]


def _split_line(rows: list[dict]) -> str:
    """Goal line of the ``exponential-split`` rows (the default since session 12 in a space that
    mixes channels with prune / bits): against uniform (which ignores split seeds), against
    exponential without them, and feasibility."""
    diff, sd, n = _paired(rows, "exponential-split")
    gain, gain_sd, k = _paired(rows, "exponential-split", base="exponential")
    again = [r["feasible"] for r in rows if r["method"] == "exponential-split"]
    return (f"  With split seeds (the default since session 12): exponential-split - uniform = "
            f"{_paired_text(diff, sd, n) or 'n/a'} pt over {n} paired seeds ({'met' if diff >= 0 else 'MISSED'}); "
            f"minus exponential without them = {_paired_text(gain, gain_sd, k) or 'n/a'} pt over {k}; feasible "
            f"{sum(again)}/{len(again)} runs ({'met' if all(again) else 'MISSED'}).")


def _feasible_line(rows: list[dict]) -> str:
    """Goal line: how many of ``rows`` met every budget on re-measurement."""
    feasible = [r["feasible"] for r in rows]
    return (f"  Feasible on re-measurement: {sum(feasible)}/{len(feasible)} runs "
            f"({'met' if all(feasible) else 'MISSED'}).")


def _channels_lines(rows: list[dict], mean: dict[str, float], head: dict[str, Any] | None) -> list[str]:
    """Goal lines of the ``*-channels`` rows (channels + prune + bits in a cell whose default
    operators leave channels out): each against the same method without channels and against
    the plain ``uniform`` (the simple answer with the cell's default operators); ``head``: a
    headroom study over the same three operators, which one-step-channels is judged by."""
    parts = []
    for method in ("one-step-channels", "uniform-channels", "exponential-channels"):
        if method in mean:
            base = method.removesuffix("-channels")
            gain, gain_sd, k = _paired(rows, method, base=base)
            diff, sd, n = _paired(rows, method)
            again = [r["feasible"] for r in rows if r["method"] == method]
            versus = "" if base == "uniform" else f", minus uniform = {_paired_text(diff, sd, n) or 'n/a'} pt over {n}"
            parts.append(f"{method} minus {base} = {_paired_text(gain, gain_sd, k) or 'n/a'} pt over {k}{versus}, "
                         f"feasible {sum(again)}/{len(again)}")
    if "one-step-channels" in mean:  # the default: against the other methods with the same operators
        for rival in ("uniform-channels", "exponential-channels"):
            if rival in mean:
                diff, sd, n = _paired(rows, "one-step-channels", base=rival)
                parts.append(f"one-step-channels minus {rival} = {_paired_text(diff, sd, n) or 'n/a'} pt over {n} "
                             f"({'met' if diff >= 0 else 'MISSED'})")
    lines = ["  With channels as well (channels + prune + bits, a size budget's default operators since session 14): "
             + "; ".join(parts) + "."]
    if head and "one-step-channels" in mean:
        lines.append(_headroom_line(head, "one-step-channels", mean["one-step-channels"],
                                    _paired(rows, "one-step-channels", base="uniform-channels"),
                                    over=" over channels + prune + bits"))
    return lines


def _computed(cell: str) -> bool:
    """Whether every budget of ``cell`` (``size05`` or ``size05 @B``) is computed exactly from a
    configuration: the pipeline's ``cooling='auto'`` then searches in one step."""
    from netbudget.constraints import parse_constraints
    from netbudget.pipeline.cost import COMPUTABLE_KEYS

    return all(c.key in COMPUTABLE_KEYS for c in parse_constraints(CELLS[cell.split(" @")[0]]["constraints"]))


def _computed_lines(rows: list[dict], mean: dict[str, float], head: dict[str, Any] | None) -> list[str]:
    """Goal lines of a cell of computed budgets, where the default (``cooling='auto'``, since
    session 11) is ``one-step``: against uniform, exponential and every other method."""
    diff, sd, n = _paired(rows, "one-step")
    cost, cost_sd, k = _paired(rows, "one-step", base="exponential")
    rivals = {m: _paired(rows, m, base="one-step") for m in mean if m != "one-step" and not m.endswith(RERUNS)}
    ahead = [f"{m} ({d:+.2f} pt over {j})" for m, (d, _, j) in rivals.items() if j and d > 0]
    lines = [(f"  Default for computed budgets (`cooling='auto'` = one-step, since session 11): one-step - uniform = "
              f"{_paired_text(diff, sd, n)} pt over {n} paired seeds ({'met' if diff >= 0 else 'MISSED'}); minus "
              f"exponential = {_paired_text(cost, cost_sd, k) or 'n/a'} pt over {k}; methods ahead of it (paired): "
              f"{', '.join(ahead) or 'none'} ({'met' if not ahead else 'MISSED'}).")]
    if head:
        lines.append(_headroom_line(head, "one-step", mean["one-step"], (diff, sd, n)))
    return lines


def _bases(rows: list[dict], method: str) -> tuple[str, str]:
    """The uniform and exponential rows ``method`` is compared with in the table: the plain
    methods where the cell has them; in a cell run only with later defaults, the rows with all
    of ``method``'s settings where the cell ran uniform with them (its exponential rows may be
    missing: that column stays blank), else those with its last suffix, else the ``-repair`` rows."""
    have = {r["method"] for r in rows}
    if "uniform" in have:
        return "uniform", "exponential"
    # judged against the rows it guards; the capacity tie-break has no ties to break on the uniform path,
    # nor does a last step searched from the original network
    method = method.removesuffix("-slack").removesuffix("-warm").removesuffix("-last24").removesuffix("-lastorig").removesuffix("-capacity").removesuffix("-guard")
    base = next((b for b in sorted(BASE_METHODS, key=len, reverse=True) if method.startswith(b)), "")
    settings = method[len(base):]  # every suffix, e.g. -soup2-bnfinal-thin
    if settings and f"uniform{settings}" in have:
        return f"uniform{settings}", f"exponential{settings}"
    suffix = next((s for s in RERUNS if method.endswith(s)), "-repair")
    uniform, exponential = (f"{m}{suffix}" if f"{m}{suffix}" in have else f"{m}-repair"
                            for m in ("uniform", "exponential"))
    return uniform, exponential


def _final_tries_lines(results: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """Section on the runs with several final fine-tunes (``-final2``): each run's first try is
    the single fine-tune (same network, same seed), so kept - first is what the choice on
    validation data gained on the network the run found; then the methods against each other
    and against their single-fine-tune rows (other runs: the search's noise included)."""
    cells = _by_cell(results["rows"], labels)
    tried = {key: rows for key, rows in cells.items() if any(len(r.get("final_tries") or []) > 1 for r in rows)}
    if not tried:
        return []
    lines = ["", "## Final tries: the better of two final fine-tunes on validation data (`-final2`), or their soup (`-soup2`)", "",
             ("Each run fine-tuned its last network twice from the same weights with two seeds and kept the try "
              "with the better validation top-1 (`-final2`) or their weight average (`-soup2`); its first try is "
              "the single fine-tune a run without the setting makes (same network, same seed). Test top-1 in %; "
              "differences in points, mean +- sd over runs."),
             "", ("| network | cell | method | runs | first try (one fine-tune) | kept | kept - first | "
                  "kept the better on test | tries' test spread (mean abs. difference) |"),
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    notes = []
    for (network, cell), rows in tried.items():
        methods = sorted({r["method"] for r in rows if len(r.get("final_tries") or []) > 1})
        for method in methods:
            mine = [r for r in rows if r["method"] == method]
            first = np.array([r["final_tries"][0]["test_top1"] for r in mine])
            kept = np.array([next(t for t in r["final_tries"] if t["kept"])["test_top1"] for r in mine])
            best = sum(k >= max(t["test_top1"] for t in r["final_tries"]) for k, r in zip(kept, mine))
            spread = np.mean([max(t["test_top1"] for t in r["final_tries"]) - min(t["test_top1"] for t in r["final_tries"])
                              for r in mine])
            gain, sd, n = _spread(list(100 * (kept - first)))
            lines.append(f"| {network} | {cell} | {method} | {n} | {100 * first.mean():.2f} | {100 * kept.mean():.2f} | "
                         f"{_paired_text(gain, sd, n)} | {best} of {n} | {100 * spread:.2f} |")
        for suffix, title in (("-final2-thin", "with two final tries"),
                              ("-soup2-bnfinal-thin", "with two final tries averaged (soup)")):
            if {f"exponential{suffix}", f"uniform{suffix}"} <= set(methods):
                notes.append(f"* {network} / {cell}: " + _rerun_line(
                    rows, suffix, title, "the single fine-tune's rows (other runs)",
                    {"exponential": "exponential-thin", "uniform": "uniform-thin"}).strip())
    return lines + ([""] + notes if notes else [])


def _versus(rows: list[dict], method: str, base: str, seeds: set[int] | None = None) -> str:
    """``method`` - ``base`` paired over the seeds (only ``seeds`` of ``method``'s when given), as text."""
    chosen = [r for r in rows if r["method"] != method or seeds is None or r["seed"] in seeds]
    return _paired_text(*_paired(chosen, method, base=base)) or "none"


def _guard_lines(results: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """Section on the ``-guard`` rows (the uniform guard, ``uniform_guard``): per cell, how many
    runs shipped the uniform network, and the guarded default against the uniform rows and
    against the same method without the guard (other runs of the same seeds), over all runs and
    over those where the guard acted or did not."""
    lines = []
    for (network, cell), rows in sorted(_by_cell(results["rows"], labels).items()):
        for method in sorted({r["method"] for r in rows if r["method"].endswith("-guard")}):
            plain = method.removesuffix("-guard")
            uniform = _bases(rows, method)[0]
            mine = [r for r in rows if r["method"] == method]
            applied = {r["seed"] for r in mine if (r.get("guard") or {}).get("applied")}
            kept = {r["seed"] for r in mine} - applied
            lines.append(
                f"| {network} | {cell} | {method} | {len(mine)} | {len(applied)} | "
                f"{100 * np.mean([r['final_top1'] for r in mine]):.2f} % | {_versus(rows, method, uniform)} | "
                f"{_versus(rows, method, plain)} | {_versus(rows, method, uniform, applied)} | "
                f"{_versus(rows, method, uniform, kept)} | {sum(r['feasible'] for r in mine)}/{len(mine)} |")
    if not lines:
        return []
    return ["", "## Uniform guard (`-guard`): the uniform network in place of a searched one with no more MACs and parameters", "",
            ("A guarded run compares its re-checked network with the uniform path's network (what the uniform rows "
             "end on: each step every layer pruned alike to its threshold; re-checked alike); when the searched one "
             "has no more multiply-accumulates and no more parameters, the uniform path's network is trained as that "
             "path trains it and shipped instead. "
             "Differences in points, paired by seed, mean +- sd (seeds); `unguarded`: the same method's runs "
             "without the guard (their own searches: the re-timings differ)."), "",
            ("| network | cell | method | runs | uniform shipped | final top-1 | minus uniform | minus unguarded | "
             "minus uniform, shipped | minus uniform, kept | feasible |"),
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|", *lines]


def _retime_lines(results: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """Section on the ``-retime`` rows (a re-check miss resting on one slow moment re-timed,
    ``retimes``): per cell and method, its re-check against the same method's rows without it
    (other runs of the same seeds): tries re-timed, mean re-check position, runs thinned by
    >= 0.25 of their range, and the paired final top-1."""
    lines = []

    def positions(mine: list[dict]) -> tuple[str, str]:
        known = [r["recheck_position"] for r in mine if r.get("recheck_position") is not None]
        if not known:
            return "none", "none"
        return f"{np.mean(known):.3f}", f"{sum(p >= 0.25 for p in known)} of {len(known)}"

    for (network, cell), rows in sorted(_by_cell(results["rows"], labels).items()):
        for method in sorted({r["method"] for r in rows if "-retime" in r["method"]}):
            before = method.replace("-retime", "")
            mine = [r for r in rows if r["method"] == method]
            seeds = {r["seed"] for r in mine}
            theirs = [r for r in rows if r["method"] == before and r["seed"] in seeds]
            (mean, thinned), (mean0, thinned0) = positions(mine), positions(theirs)
            lines.append(
                f"| {network} | {cell} | {method} | {len(mine)} | {sum(r.get('recheck_retimes', 0) for r in mine)} | "
                f"{mean} / {mean0} | {thinned} / {thinned0} | {100 * np.mean([r['final_top1'] for r in mine]):.2f} % | "
                f"{_versus(rows, method, before)} | {sum(r['feasible'] for r in mine)}/{len(mine)} |")
    if not lines:
        return []
    return ["", "## Re-timing a slow moment (`-retime`): the re-check's misses that one moment explains", "",
            ("Before the final fine-tune the winner is re-timed at 5 moments; a miss whose bound holds with the slowest "
             "moment left out is re-timed once at fresh moments and judged on them alone, instead of sending the walk "
             "on to thin the network. Each column `with / without`: the same method's runs of the same seeds without "
             "re-timing (their own searches). Differences in points, paired by seed, mean +- sd (seeds)."), "",
            ("| network | cell | method | runs | tries re-timed | re-check position, with / without | "
             "thinned >= 0.25, with / without | final top-1 | minus without | feasible |"),
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|", *lines]


def _by_cell(entries: list[dict], labels: dict[str, str]) -> dict[tuple[str, str], list[dict]]:
    """``entries`` (rows or headroom studies) grouped by (network, cell tagged with its machine)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for entry in entries:
        groups.setdefault((entry["network"], _where(entry, labels)), []).append(entry)
    return groups


def _studies(heads: list[dict]) -> tuple[dict | None, dict | None]:
    """A cell's headroom study over its default operators (which judges its rows) and one over
    all three operators beside it (which judges its channel rows); None where it has none."""
    head = next((h for h in heads if _head_operators(h) == _headroom_operators(h["cell"])), None)
    return head, next((h for h in heads if h is not head and len(_head_operators(h)) == 3), None)


# a cell's current default and the simple answer it is judged against, newest settings first: the
# scoreboard takes the first pair the cell ran (suffix: the settings its rivals share). The -soup2-bnfinal
# rows are the pipeline's defaults of session 35 in a small budget (two averaged final fine-tunes);
# in a standard budget the default is their first try (`final_tries` auto = 1), +0.02 pt from the soup.
DEFAULTS = (("exponential-soup2-bnfinal-thin-retime-guard-lastorig-slack", "uniform-soup2-bnfinal-thin-retime",
             "-soup2-bnfinal-thin-retime"),
            ("exponential-soup2-bnfinal-thin-retime-guard-lastorig", "uniform-soup2-bnfinal-thin-retime",
             "-soup2-bnfinal-thin-retime"),
            ("exponential-soup2-bnfinal-thin-retime-guard", "uniform-soup2-bnfinal-thin-retime",
             "-soup2-bnfinal-thin-retime"),
            ("exponential-soup2-bnfinal-thin-guard", "uniform-soup2-bnfinal-thin", "-soup2-bnfinal-thin"),
            ("exponential-soup2-bnfinal-thin", "uniform-soup2-bnfinal-thin", "-soup2-bnfinal-thin"),
            ("exponential-floor-thin", "uniform-thin", "-thin"), ("exponential-thin", "uniform-thin", "-thin"),
            ("exponential-split", "uniform", ""), ("exponential-repair", "uniform-repair", "-repair"),
            ("exponential-moments", "uniform-moments", "-moments"),
            ("exponential-recheck", "uniform-recheck", "-recheck"), ("exponential", "uniform", ""))
# in a cell of computed budgets (`cooling='auto'` = one step since session 11; channels + prune +
# bits for a size budget since session 14; `project_slack` since session 56, measured there in sessions 57-59)
COMPUTED_DEFAULTS = (("one-step-channels-slack", "uniform-channels", "-channels"),
                     ("one-step-channels", "uniform-channels", "-channels"), ("one-step", "uniform", ""))


def _scoreboard_row(network: str, cell: str, rows: list[dict],
                    heads: list[dict]) -> tuple[list[str], list[str]] | None:
    """One scoreboard row: the cell's current default (``DEFAULTS``) against its uniform rows,
    its headroom, the methods run with the same settings, and re-measurement, with the verdict of
    each of the issue's four goals (met, MISSED, n/a, not run) apart; None when the cell ran no
    default with its uniform rows."""
    have = {r["method"] for r in rows}
    pairs = COMPUTED_DEFAULTS if _computed(cell) else DEFAULTS
    found = next(((d, u, s) for d, u, s in pairs if {d, u} <= have), None)
    if found is None:
        return None
    default, uniform, suffix = found
    diffs = _diffs(rows, default, uniform)
    mean, sd, n = _spread(diffs)
    mine = [r for r in rows if r["method"] == default]
    top1 = 100 * float(np.mean([r["final_top1"] for r in mine]))
    head, head_channels = _studies(heads)
    if suffix == "-channels":  # judged by a study over the same three operators
        head = head_channels
    if head is None:
        room_text, room_goal = "not run", "not run"
    else:
        room_text, room_goal = _room_goal(head, top1, (mean, sd, n))
        room_text += f" ({head['n']} configurations)"
        if "confirmed" in head and (found := _confirmed_room(head)) is not None:  # without the draws' luck
            room_text += f"; {found[0]:.2f} pt over {found[2]} fine-tuning seeds"

    def shares(method: str) -> bool:
        """Run with the default's settings (its suffix, or the default plus a variant of its own,
        e.g. ``-capacity``); the default without its guard is no rival."""
        same_settings = method.endswith(suffix) if suffix else not method.endswith(RERUNS)
        variant = method.startswith(default + "-")
        return (same_settings or variant) and method not in (default, uniform, default.removesuffix("-guard"))

    rivals = {m: _paired(rows, m, base=default) for m in sorted(have) if shares(m)}
    first = ""
    if not rivals and suffix and "exponential" in have:  # only the cell's first rows ran rivals: theirs
        first = " (first settings)"
        rivals = {m: _paired(rows, m, base="exponential") for m in sorted(have)
                  if not m.endswith(RERUNS) and m not in ("exponential", "uniform")}
    ahead = [f"{m} {_paired_text(d, s, k)} ({k})" for m, (d, s, k) in rivals.items() if k and d > 0]
    rival_goal = "not run" if not rivals else ("MISSED" if ahead else "met") + first
    runs = [r for r in rows if r["method"] in (default, uniform) or shares(r["method"])]
    verified = sum(r["feasible"] for r in runs)
    # no seed both ran (e.g. on two base networks) pairs nothing: not judged, rather than MISSED on a nan
    first_goal = "not run (no paired seed)" if n == 0 else "met" if mean >= 0 else "MISSED"
    goals = [first_goal, room_goal, rival_goal, "met" if verified == len(runs) else "MISSED"]
    return [network, cell, f"`{default}`", f"{top1:.2f} %", f"{_paired_text(mean, sd, n) or 'none'} ({n})",
            f"{sum(d > 0 for d in diffs)} of {n}", room_text,
            (", ".join(ahead) or (f"none of {len(rivals)}" if rivals else "not run")) + first,
            f"{verified}/{len(runs)}", " / ".join(goals)], goals


def _scoreboard_lines(results: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """The issue's four goals per (network, cell), one row each, judged on the cell's current
    default: at or above uniform (paired mean), at least half the headroom where it is >= 1 pt,
    at or above every method run with the same settings, every such run verified."""
    table, met = [], 0
    heads = _by_cell(results["headroom"], labels)
    for (network, cell), rows in sorted(_by_cell(results["rows"], labels).items()):
        found = _scoreboard_row(network, cell, rows, heads.get((network, cell), []))
        if found is not None:
            table.append("| " + " | ".join(found[0]) + " |")
            met += not any(goal.startswith("MISSED") for goal in found[1])
    if not table:
        return []
    return ["## Scoreboard: the goals per cell, judged on the cell's current default", "",
            ("The default is the newest settings a cell ran (`-soup2-bnfinal-thin`, `-floor-thin`, `-thin`, ...; in a cell of computed "
             "budgets `one-step`, with channels and `project_slack` where it ran them) against the uniform rows of the same settings; "
             "rivals and re-measurement count the runs with those settings (rivals: the cell's first rows where "
             "only they ran other methods). Goals: default >= uniform (paired mean) / half the headroom captured "
             "where it is >= 1 pt (above the study's one-shot uniform configuration and above the uniform runs, "
             "paired; or the study's best configuration reached) / no rival ahead (paired mean) / every run "
             "verified. Differences in points, paired by seed: mean +- sd (seeds)."), "",
            ("| network | cell | default | final top-1 | minus uniform (pt) | ahead in | headroom, captured | "
             "rivals ahead (pt) | verified | goals |"),
            "|---|---|---|---:|---:|---:|---|---|---:|---|", *table, "",
            f"{met} of {len(table)} cells meet every goal they were run against.", ""]


def _machine_labels(results: dict[str, Any]) -> dict[str, str]:
    """Fingerprint -> "A", "B", ... in order of appearance; "A" is the earlier machine."""
    labels = {EARLIER: "A"}
    for entry in [*results["dense"], *results["rows"], *results.get("unreachable", []), *results["headroom"],
                  *results["proxy"]]:
        labels.setdefault(entry.get("machine", EARLIER), "ABCDEFGHIJ"[len(labels) % 10])
    return labels


def _where(entry: dict[str, Any], labels: dict[str, str]) -> str:
    """The entry's cell, tagged with its machine's label unless it ran on the earlier machine:
    rows from different machines (or base networks) are never averaged or paired together."""
    label = labels[entry.get("machine", EARLIER)]
    return entry["cell"] if label == "A" else f"{entry['cell']} @{label}"


def write_markdown(out: Path, results: dict[str, Any]) -> None:
    """The Markdown table (``.md``) and the paired-difference plot (``.png``) next to ``out``."""
    results = _backfill(results)
    labels = _machine_labels(results)
    lines = ["# Ablation: search methods against the uniform baseline", "",
             (f"Machine: {results['machine']}. Fashion-MNIST; latency on onnxruntime, 1 thread, batch "
              f"{LATENCY['batch_size']}. Search: {results.get('search')} (steps x candidates per step)."), ""]
    if len(labels) > 1:
        lines += [("Machines (a cell run on another machine than A is tagged `@B`, ...; its rows are neither averaged "
                   "nor paired with A's):"), ""]
        lines += [f"* {label}: {'the machine of sessions 1-8' if fp == EARLIER else fp}" for fp, label in labels.items()]
        lines.append("")
    lines += _scoreboard_lines(results, labels)
    lines += [f"Note: {note}" for note in results.get("notes", [])] + ([""] if results.get("notes") else [])
    lines += ["## Dense networks", "", "| network | machine | test top-1 | latency (ms / batch) | spread (CV) |",
              "|---|---|---:|---:|---:|"]
    for d in results["dense"]:
        lines.append(f"| {d['network']} | {labels[d['machine']]} | {100 * d['top1']:.2f} % | {d['latency_ms']:.2f} | "
                     f"{100 * d['latency_spread']:.1f} % |")
    lines += ["", "## Final test top-1 by method (mean over seeds; paired difference to uniform, mean +- sd)", "",
              ("| network | cell | method | seeds | final top-1 | vs uniform (pt) | vs exponential (pt) | feasible | "
               "evaluations | seconds |"),
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    cells = sorted(_by_cell(results["rows"], labels).items())
    headrooms = _by_cell(results["headroom"], labels)
    plot: list[tuple[str, float, float]] = []
    for (network, cell), rows in cells:
        for method in [m for m in METHODS if any(r["method"] == m for r in rows)]:
            mine = [r for r in rows if r["method"] == method]
            uniform, exponential = _bases(rows, method)
            diff, sd, n = _paired(rows, method, base=uniform)
            diff_text = "" if method == uniform else _paired_text(diff, sd, n)
            versus = "" if method == exponential else _paired_text(*_paired(rows, method, base=exponential))
            lines.append(
                f"| {network} | {cell} | {method} | {len(mine)} | {100 * np.mean([r['final_top1'] for r in mine]):.2f} % | "
                f"{diff_text} | {versus} | {sum(r['feasible'] for r in mine)}/{len(mine)} | "
                f"{np.mean([r['evaluations'] for r in mine]):.0f} | {np.mean([r['seconds'] for r in mine]):.0f} |"
            )
            if method != "uniform" and n:
                plot.append((f"{network}/{cell}/{method}", diff, 0.0 if math.isnan(sd) else sd))
    for u in results.get("unreachable", []):
        lines.append(f"| {u['network']} | {_where(u, labels)} | (unreachable) | | | | | | | |")
    lines += ["", "## Goals (netbudget's default = `exponential`)", ""]
    for (network, cell), rows in cells:
        mean = {m: 100 * float(np.mean([r["final_top1"] for r in rows if r["method"] == m]))
                for m in METHODS if any(r["method"] == m for r in rows)}
        head, head_channels = _studies(headrooms.get((network, cell), []))
        if "exponential" not in mean or "uniform" not in mean:
            if _computed(cell) and {"one-step", "uniform"} <= set(mean):  # a size cell run without exponential
                lines.append(f"* {network} / {cell}:")
                lines += _computed_lines(rows, mean, head)
                lines.append(_feasible_line(rows))
                if {"one-step-channels", "uniform-channels"} & set(mean):
                    lines += _channels_lines(rows, mean, head_channels)
            repair, thin = ({f"exponential{s}", f"uniform{s}"} <= set(mean) for s in ("-repair", "-thin"))
            if repair or thin:  # a cell run only with the current defaults (of then, of now)
                lines.append(f"* {network} / {cell}:")
            if repair:
                lines.append(_repair_line(rows))
                lines += _rivals_lines(rows, mean, "-repair")
            if thin:  # the floor-path rows re-run exponential with a later default: their own line
                searched = [r for r in rows if "-floor" not in r["method"]]
                lines.append(_thin_line(searched))
                lines += _rivals_lines(searched, {m: v for m, v in mean.items() if "-floor" not in m}, "-thin")
                if "exponential-floor-thin" in mean:
                    lines.append(_floor_line(rows))
            if (repair or thin) and head:
                for method in ("exponential-repair", "exponential-thin"):
                    if method in mean:
                        uniform = method.replace("exponential", "uniform")
                        lines.append(_headroom_line(head, method, mean[method], _paired(rows, method, base=uniform)))
            continue
        diff, sd, n = _paired(rows, "exponential")
        # paired over the seeds both ran; "clearly" = the mean difference exceeds 2 standard errors
        better = {m: _paired(rows, m, base="exponential") for m in mean
                  if m != "exponential" and not m.endswith(RERUNS)}
        others = [f"{m} ({d:+.2f} pt, {'clearly' if k > 1 and d > 2 * s / math.sqrt(k) else 'inside the spread'})"
                  for m, (d, s, k) in better.items() if k and d > 0]
        lines.append(f"* {network} / {cell}: exponential - uniform = {_paired_text(diff, sd, n) or 'n/a'} pt over {n} paired seeds "
                     f"({'met' if diff >= 0 else 'MISSED'}).")
        if head:
            lines.append(_headroom_line(head, "exponential", mean["exponential"], (diff, sd, n)))
        lines.append(f"  Methods ahead of exponential (paired): {', '.join(others) or 'none'} "
                     f"({'met' if not others else 'MISSED'}).")
        lines.append(_feasible_line(rows))
        if _computed(cell) and "one-step" in mean:
            lines += _computed_lines(rows, mean, head)
        if {"exponential-recheck", "uniform-recheck"} <= set(mean):
            diff, sd, n = _paired(rows, "exponential-recheck", base="uniform-recheck")
            again = [r["feasible"] for r in rows if r["method"].endswith("-recheck")]
            lines.append(f"  With the re-check (current pipeline): exponential - uniform = {_paired_text(diff, sd, n)} pt "
                         f"over {n} paired seeds ({'met' if diff >= 0 else 'MISSED'}); feasible {sum(again)}/"
                         f"{len(again)} runs ({'met' if all(again) else 'MISSED'}).")
        if "exponential-margin4" in mean:
            cost, cost_sd, k = _paired(rows, "exponential-margin4", base="exponential")
            diff, sd, n = _paired(rows, "exponential-margin4")
            again = [r["feasible"] for r in rows if r["method"] == "exponential-margin4"]
            lines.append(f"  With the 4 % margin (the current default): minus exponential (2 %) = "
                         f"{_paired_text(cost, cost_sd, k)} pt over {k} paired seeds, minus uniform (2 %) = "
                         f"{_paired_text(diff, sd, n)} pt over {n}; feasible {sum(again)}/{len(again)} runs "
                         f"({'met' if all(again) else 'MISSED'}).")
        if {"exponential-w16", "uniform-w16"} <= set(mean):
            # against the same pipeline with rounding to 8: the re-check rows where a cell has them
            bases = {m: f"{m}-recheck" if f"{m}-recheck" in mean else m for m in ("exponential", "uniform")}
            lines.append(_rerun_line(rows, "-w16", "With widths in multiples of 16", "rounding to 8", bases))
        if {"exponential-moments", "uniform-moments"} <= set(mean):
            lines.append(_rerun_line(rows, "-moments", "Re-measured at 5 moments (`moments=5`)", "one moment",
                                     {"exponential": "exponential", "uniform": "uniform"}))
        if {"exponential-repair", "uniform-repair"} <= set(mean):
            lines.append(_repair_line(rows))
        if {"exponential-thin", "uniform-thin"} <= set(mean):
            lines.append(_thin_line(rows))
        if "exponential-split" in mean:
            lines.append(_split_line(rows))
            if head and head.get("construction") == "split":  # the mixing draws were no oracle for a mixed cell
                lines.append(_headroom_line(head, "exponential-split", mean["exponential-split"],
                                            _paired(rows, "exponential-split")))
        if {"one-step-channels", "uniform-channels"} & set(mean):
            lines += _channels_lines(rows, mean, head_channels)
    lines += _cooling_lines(results, labels, "-thin", "the current settings: the `-thin` rows")
    lines += _final_tries_lines(results, labels)
    lines += _guard_lines(results, labels)
    lines += _retime_lines(results, labels)
    lines += _cooling_lines(results, labels, "", "the first rows of each cell: the pipeline's settings when the cell first ran")
    lines += ["", "## Headroom: random bounded feasible configurations, fine-tuned", "",
              ("Draws: `mix` = random starts mixed towards the most compressed corner until feasible; `split` = one "
               "kind of operator at a time (channels, then the weights, or the other way round)."), "",
              "| network | cell | operators | draws | n | uniform | oracle best | oracle mean |",
              "|---|---|---|---|---:|---:|---:|---:|"]
    for h in results["headroom"]:
        lines.append(f"| {h['network']} | {_where(h, labels)} | {' + '.join(_head_operators(h))} | "
                     f"{h.get('construction', 'mix')} | {h['n']} | "
                     f"{100 * h['uniform_top1']:.2f} % | {100 * h['oracle_best_top1']:.2f} % | "
                     f"{100 * h['oracle_mean_top1']:.2f} % |")
    lines += ["", "## Proxy study: Spearman correlation with top-1 after fine-tuning", "",
              "| network | cell | operators | fidelity | Spearman | seconds per candidate |",
              "|---|---|---|---|---:|---:|"]
    for p in results["proxy"]:
        rho = "none (every score equal)" if p["spearman"] is None else f"{p['spearman']:+.2f}"
        ops = " + ".join(_head_operators(p)) if "cell" in p else ""
        lines.append(f"| {p['network']} | {_where(p, labels) if 'cell' in p else ''} | {ops} | {p['fidelity']} | "
                     f"{rho} | {p['seconds']:.2f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 0.4 * len(plot) + 1.5))
        ax.barh([p[0] for p in plot], [p[1] for p in plot], xerr=[p[2] for p in plot], color="tab:blue")
        ax.axvline(0, color="black")
        ax.set_xlabel("final top-1 minus uniform's (points, paired by seed)")
        fig.tight_layout()
        fig.savefig(out.with_suffix(".png"), dpi=90)
        plt.close(fig)


if __name__ == "__main__":
    main()
