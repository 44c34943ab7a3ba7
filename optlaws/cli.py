"""The ``optlaws`` command line: fit, predict, evaluate, search, optimise, plan, transfer, example.

Exit codes: 0 success; 2 bad input or a failed command (``optlaws: error: ...``); 3 a fit with
``--strict`` that did not converge or ends far from its own training data; 130 interrupted
(Ctrl-C), which leaves no half-written file (writes are atomic).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from ._fit import FitWarning, fit
from ._io import read_curve, read_schedule_csv
from ._metrics import evaluate, metrics_table
from ._precision import PRECISIONS
from ._predict import predict
from ._registry import MODELS, make_model
from ._run import SETTINGS, Run
from ._schedules import Schedule, parse_schedule
from ._serialize import load_fitted, save_model, strict_json
from ._tables import text_table

EVALUATE_KEYS = ("curve", "r2", "mean_rel_error", "max_rel_error", "final_rel_error")
EXIT_POOR_FIT = 3
EXIT_INTERRUPTED = 130  # the shell's code for SIGINT


def _given_settings(args) -> dict[str, float]:
    """Run settings given on the command line."""
    return {name: getattr(args, name) for name in SETTINGS if getattr(args, name) is not None}


def _read_curves(paths, args):
    curves = []
    for path in paths:
        options = {"schedule": args.schedule} if args.schedule else {}
        if Path(path).suffix.lower() != ".json" and args.warmup is not None:
            options["warmup"] = args.warmup
        for column in ("step_col", "loss_col", "lr_col"):
            if getattr(args, column) is not None:
                options[column] = getattr(args, column)
        curve = read_curve(path, **options, **_given_settings(args))
        curves.append(curve.since(args.from_step) if args.from_step else curve)
    return curves


def _schedule(spec: str, warmup: int | None) -> Schedule:
    """A schedule spec, or a CSV file whose ``step`` and ``lr`` columns give the learning rates."""
    if Path(spec).suffix.lower() == ".csv":
        return read_schedule_csv(spec, warmup=warmup)
    return parse_schedule(spec)


# `--out -`: the output goes to stdout, the command's report to stderr.
STDOUT = "-"


def _check_outputs(args, inputs) -> None:
    """Refuse an output (``--out``, ``--plot``) that is one of the command's inputs, or an
    existing file without ``--force``; the folder must exist (nothing is created outside it)."""
    sources = {Path(p).resolve() for p in inputs if p}
    for option in ("out", "plot"):
        target = getattr(args, option, None)
        if not target or (option == "out" and target == STDOUT):
            continue
        path = Path(target)
        if path.resolve() in sources:
            raise ValueError(f"--{option} {target} is an input of this command; refusing to overwrite it.")
        if path.exists() and not args.force:
            raise ValueError(f"--{option} {target} exists; pass --force to overwrite it.")
        if not path.resolve().parent.is_dir():
            raise ValueError(f"--{option} {target}: the folder {path.parent} does not exist.")


def _wrote(args, path) -> None:
    """Name a file the command wrote: on stdout, or on stderr when stdout carries JSON or is quiet."""
    print(f"wrote {path}", file=_messages(args))


def _messages(args):
    """Where the command's own report goes: stdout, unless stdout carries its output (``--json``,
    ``--out -``) or it is asked to be quiet."""
    taken = getattr(args, "json", False) or getattr(args, "quiet", False) or getattr(args, "out", None) == STDOUT
    return sys.stderr if taken else sys.stdout


def _out(args):
    """``--out``: a path, or stdout for ``-``."""
    return sys.stdout if args.out == STDOUT else args.out


def _free_parameters(model, text: str | None) -> tuple[str, ...] | None:
    """``--free``: a named set of the model (``default``, and for SDE models ``sweep`` and
    ``transfer``: its ``<name>_free``), or comma-separated parameter names; None: fit's choice."""
    if not text:
        return None
    named = getattr(type(model), f"{text}_free", None) if text.isidentifier() else None
    return tuple(named) if isinstance(named, tuple) else tuple(text.split(","))


def _cmd_fit(args) -> int:
    _check_outputs(args, args.curves)
    curves = _read_curves(args.curves, args)
    model = make_model(args.model)
    free = _free_parameters(model, args.free)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)  # the summary reports them
        result = fit(model, curves, free=free, num_starts=args.starts, seed=args.seed,
                     discrepancy=args.discrepancy, progress=not args.quiet)
    save_model(_out(args), result.model, result)
    if not args.quiet:
        print(result.summary(problems=False), file=_messages(args))  # problems go to stderr, below
        if args.out != STDOUT:
            print(f"\nwrote {args.out}")
    for problem in result.problems():
        print(f"optlaws: warning: {problem}", file=sys.stderr)
    return EXIT_POOR_FIT if args.strict and result.problems() else 0


def _cmd_predict(args) -> int:
    _check_outputs(args, [args.fitted, args.schedule])
    fitted = load_fitted(args.fitted, trust=args.trust)
    schedule = _schedule(args.schedule, args.warmup)
    run = Run(schedule, **_given_settings(args)).fill(**fitted.run_settings)
    prediction = predict(fitted, run, every=args.every, band=args.band, seed=args.seed, name=schedule.name)
    prediction.to_csv(_out(args))
    if not args.quiet:
        band = (f" ({args.band:.0%} band {prediction.loss_low[-1]:.5f} to {prediction.loss_high[-1]:.5f})"
                if args.band is not None else "")
        print(f"{schedule.name}: predicted final loss {prediction.final_loss:.5f}{band} at step "
              f"{int(prediction.steps[-1])}" + (f" (diverges at step {prediction.diverged_at})"
                                                if prediction.diverged_at is not None else ""),
              file=_messages(args))
        if args.out != STDOUT:
            print(f"wrote {args.out}")
    if args.plot:
        from ._plot import plot_curves

        plot_curves([prediction], path=args.plot, title=f"predicted loss: {schedule.name}")
        _wrote(args, args.plot)
    return 0


def _cmd_evaluate(args) -> int:
    _check_outputs(args, [args.fitted, *args.curves])
    fitted = load_fitted(args.fitted, trust=args.trust)
    model = fitted.model
    curves = [dataclasses.replace(c, run=c.run.fill(**fitted.run_settings)) for c in _read_curves(args.curves, args)]
    results = evaluate(model, curves)
    if args.json:
        print(json.dumps(strict_json([{k: m.as_dict()[k] for k in EVALUATE_KEYS} for m in results]), indent=1,
                         allow_nan=False))
    else:
        print(metrics_table(results))
    if args.plot:
        from ._plot import plot_curves

        predictions = [predict(model, c.run, name=c.name) for c in curves]
        plot_curves(predictions, curves, path=args.plot, title="predicted vs observed")
        _wrote(args, args.plot)
    return 0


def _value_range(text: str, option: str, *, log: bool) -> np.ndarray | None:
    """``LOW:HIGH:N[:log]``: N values from LOW to HIGH, log-spaced with ``:log`` or when ``log``,
    else evenly; ``None`` when ``text`` is not of that form."""
    parts = text.split(":")
    if len(parts) not in (3, 4):
        return None
    if len(parts) == 4 and parts[3] != "log":
        raise ValueError(f"{option} {text!r}: the fourth field may only be 'log'.")
    try:
        low, high, count = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise ValueError(f"{option} {text!r}: LOW and HIGH must be numbers and N an integer.") from None
    log = log or len(parts) == 4
    if count < 1 or (log and not 0 < low <= high):
        raise ValueError(f"{option} {text!r}: need N >= 1 (and 0 < LOW <= HIGH for a log grid).")
    return np.geomspace(low, high, count) if log else np.linspace(low, high, count)


def _parse_lr_grid(text: str) -> np.ndarray:
    """``LOW:HIGH:N`` (log-spaced) or a comma-separated list of peak LRs."""
    grid = _value_range(text, "--lrs", log=True)
    if grid is not None:
        return grid
    try:
        return np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise ValueError(f"--lrs expects LOW:HIGH:N or a comma-separated list of numbers, got {text!r}.") from None


def _cmd_transfer(args) -> int:
    from ._transfer import fit_lr_transfer, model_optima, read_sweep, sweep_optima

    if Path(args.source).suffix.lower() == ".json":
        if not args.family or not args.horizons:
            raise ValueError("transfer from a fitted model needs --family and --horizons.")
        fitted = load_fitted(args.source, trust=args.trust)
        horizons = [int(float(h)) for h in args.horizons.split(",")]
        optima = model_optima(fitted.model, args.family, horizons, uncertainty=fitted.uncertainty,
                              lrs=_parse_lr_grid(args.lrs) if args.lrs else None, level=args.level, seed=args.seed,
                              **{**fitted.run_settings, **_given_settings(args)})
        banded = fitted.uncertainty is not None
        if not banded:
            print(f"{args.source}: no parameter uncertainty stored (a model saved by save_model), so LR* has no "
                  "interval; `optlaws fit` writes a file with one.", file=sys.stderr)
        if args.json:
            rows = [o.as_dict() if banded else {**o.as_dict(), "lr_low": None, "lr_high": None} for o in optima]
            print(json.dumps(strict_json(rows), indent=1, allow_nan=False))
            return 0
        print(text_table(["horizon", "LR*", f"{args.level:.0%} interval", "final loss"],
                         [[f"{o.horizon}", f"{o.lr_opt:.3g}", f"{o.lr_low:.3g} - {o.lr_high:.3g}" if banded else "none",
                           f"{o.final_loss:.5f}"] for o in optima], numeric=[True] * 4))
        if len(optima) > 1:
            print(f"LR* ~ D^-beta with beta = {fit_lr_transfer(optima).beta:.3f}")
        return 0
    if args.to_horizon is None:
        raise ValueError("transfer from a sweep CSV needs --to-horizon.")
    sweep = read_sweep(args.source)
    optima = sweep_optima(sweep["horizon"], sweep["peak_lr"], sweep["final_loss"], level=args.level,
                          loss_noise=args.loss_noise)
    law = fit_lr_transfer(optima)
    lr_opt, low, high = law.predict(args.to_horizon, level=args.level)
    beta_sd = float(np.sqrt(law.covariance[1, 1]))
    if args.json:
        print(json.dumps(strict_json({"lr_opt": lr_opt, "lr_low": low, "lr_high": high, "beta": law.beta,
                                      "beta_stderr": beta_sd, "horizon": args.to_horizon,
                                      "optima": [o.as_dict() for o in optima]}), indent=1, allow_nan=False))
        return 0
    for o in optima:
        print(f"horizon {o.horizon}: LR* {o.lr_opt:.3g} ({args.level:.0%}: {o.lr_low:.3g} - {o.lr_high:.3g})")
    print(f"LR*(D) = C D^-beta, beta = {law.beta:.3f} +- {beta_sd:.3f}")
    print(f"horizon {args.to_horizon:g}: LR* {lr_opt:.3g} ({args.level:.0%}: {low:.3g} - {high:.3g})")
    return 0


def _grid_values(text: str) -> tuple[str, list[str]]:
    """``key=LOW:HIGH:N[:log]`` (N evenly or log-spaced values) or ``key=a,b,c``."""
    key, sep, values = text.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise ValueError(f"--grid expects key=LOW:HIGH:N[:log] or key=a,b,c, got {text!r}.")
    grid = _value_range(values, f"--grid {key.strip()}=", log=False)
    if grid is not None:
        return key.strip(), [f"{v:.6g}" for v in grid]
    return key.strip(), [v.strip() for v in values.split(",") if v.strip()]


def _search_candidates(args) -> list[Schedule]:
    if args.candidates:
        path = Path(args.candidates)
        if not path.is_file():
            raise FileNotFoundError(f"no such candidates file: {path}")
        specs = [line.strip() for line in path.read_text().splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
        if not specs:
            raise ValueError(f"{path}: no schedule specs (one per line).")
    else:
        if not args.family or not args.total:
            raise ValueError("search needs --candidates FILE, or --family and --total (with --grid).")
        grids = dict(_grid_values(g) for g in args.grid or [])
        if "peak" not in grids:
            raise ValueError("search --family needs a peak LR: --grid peak=... (one value or several).")
        keys = list(grids)
        specs = [f"{args.family}:" + ",".join(f"{k}={v}" for k, v in zip(keys, values)) + f",total={args.total}"
                 for values in itertools.product(*(grids[k] for k in keys))]
    schedules = []
    for spec in specs:
        schedule = parse_schedule(spec)
        schedules.append(dataclasses.replace(schedule, name=spec))
    return schedules


def _cmd_search(args) -> int:
    from ._rank import rank

    _check_outputs(args, [args.fitted, args.candidates])
    fitted = load_fitted(args.fitted, trust=args.trust)
    schedules = _search_candidates(args)
    settings = {**fitted.run_settings, **_given_settings(args)}
    runs = [Run(s, **settings) for s in schedules]
    ranking = rank(fitted, runs, names=[s.name for s in schedules], at=args.at, band=args.band,
                   num_samples=args.samples, seed=args.seed, precision=args.precision, progress_bar=not args.json)
    if args.json:
        print(ranking.to_json(args.top))
    else:
        print(ranking.table(args.top))
    if args.plot:
        from ._plot import plot_curves

        best = [schedules[i] for i in ranking.index[:min(args.top or 5, 5)]]
        plot_curves([predict(fitted, Run(s, **settings), name=s.name) for s in best], path=args.plot,
                    title="best candidates")
        _wrote(args, args.plot)
    return 0


def _cmd_optimise(args) -> int:
    from ._optimise import optimise

    _check_outputs(args, [args.fitted])
    if args.out == STDOUT and args.json:
        raise ValueError("--out - and --json both write to stdout; give --out a file.")
    fitted = load_fitted(args.fitted, trust=args.trust)
    settings = {**fitted.run_settings, **_given_settings(args)}
    result = optimise(fitted, args.total, peak_lr=args.peak, min_lr=args.min_lr, warmup=args.warmup,
                      knots=args.knots, iterations=args.iterations, progress_bar=not args.json, **settings)
    lr = np.asarray(result.schedule.lr)
    fractions = (0.25, 0.5, 0.75, 0.9, 1.0)
    at = {f"{f:.0%}": float(lr[max(int(round(f * args.total)) - 1, 0)] / args.peak) for f in fractions}
    if args.out:
        prediction = predict(fitted, Run(result.schedule, **settings), every=1)
        prediction.to_csv(_out(args))
    if args.json:
        print(json.dumps(strict_json({
            "optimised": {"final_loss": result.final_loss, "lr_over_peak_at": at, "csv": args.out},
            "best_family": {"schedule": result.best_family, "final_loss": result.best_family_loss},
        }), indent=1, allow_nan=False))
    else:
        report = _messages(args)
        print(text_table(["schedule", "final loss", ""],
                         [["optimised (free-form)", f"{result.final_loss:.5f}", ""],
                          [result.best_family, f"{result.best_family_loss:.5f}", "(best family member)"]],
                         numeric=[False, True, False]), file=report)
        print("optimised LR / peak at " + ", ".join(f"{k} of the run: {v:.3f}" for k, v in at.items()), file=report)
        if args.out and args.out != STDOUT:
            print(f"wrote {args.out} (step,lr,loss; usable as `predict --schedule`)")
    if args.plot:
        from ._plot import plot_curves

        best = parse_schedule(result.best_family)
        plot_curves([predict(fitted, Run(s, **settings), name=name)
                     for s, name in ((result.schedule, "optimised"), (best, "best family member"))],
                    path=args.plot, title="free-form optimum vs the best family member")
        _wrote(args, args.plot)
    return 0


def _cmd_plan(args) -> int:
    from ._plan import plan

    _check_outputs(args, [args.fitted, args.observed])
    fitted = load_fitted(args.fitted, trust=args.trust)
    observed = _read_curves([args.observed], args)[0]
    if args.until is not None:
        observed = observed.until(args.until)
    observed = dataclasses.replace(observed, run=observed.run.fill(**fitted.run_settings))
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    result = plan(fitted, observed, args.total, shapes=shapes, final_lr=args.final_lr, band=args.band,
                  num_samples=args.samples, seed=args.seed, progress_bar=not args.json)
    if args.json:
        print(result.to_json(args.top))
        return 0
    print(f"{observed.name}: observed to step {result.checkpoint} at LR {result.current_lr:g}, loss "
          f"{float(observed.loss[-1]):.4f} (the model's prediction there times {result.anchor:.4f})")
    print(result.summary())
    print()
    print(result.ranking.table(args.top))
    return 0


def _cmd_example(args) -> int:
    from ._example import run_example

    result = run_example(args.out, seeds=args.seeds, progress=not args.quiet)
    print(result.fit.summary())
    print()
    print(result.table())
    print(f"\nwrote {args.out}/fitted.json, predicted_*.csv and example.png")
    return 0


class _DefaultsHelp(argparse.HelpFormatter):
    """Help that shows each option's default, where it has one and its text does not already."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text or not text:
            return text
        return f"{text} (default: %(default)s)"


def _count(text: str) -> int:
    """A whole number of steps, 0 or more (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _positive(text: str) -> int:
    """A whole number, 1 or more (argparse type)."""
    value = _count(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1, got 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optlaws",
        description="Predict training-loss curves under any learning-rate schedule.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"optlaws {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    add_command = functools.partial(commands.add_parser, formatter_class=_DefaultsHelp)

    def run_options(p, what):
        p.add_argument("--batch-size", type=float, help=f"batch size of {what} (a JSON export's config has it)")
        p.add_argument("--weight-decay", type=float, help=f"decoupled weight decay of {what}")
        p.add_argument("--momentum", type=float, help=f"Adam's beta1 or SGD's momentum of {what}")

    def seed_option(p, what):
        p.add_argument("--seed", type=int, default=0, help=f"random seed {what}")

    def ranking_options(p, top):
        p.add_argument("--top", type=_positive, default=top, help="show the best N")
        p.add_argument("--band", type=float, default=0.9, help="probability of the final-loss band")
        p.add_argument("--samples", type=_positive, default=64, help="joint parameter draws for bands and p_best")
        seed_option(p, "of the parameter draws")

    def fitted_argument(p):
        p.add_argument("fitted", help="FITTED.json written by `optlaws fit`")
        p.add_argument("--trust", action="store_true", help="load a FITTED.json edited by hand (its hash "
                       "no longer matches)")

    def curve_options(p):
        p.add_argument("--schedule", help="schedule spec for the curves (default: their 'lr' column "
                       "or JSON config), e.g. wsd:peak=3e-4,total=24000,warmup=2160")
        p.add_argument("--warmup", type=_count, help="linear warmup steps before the first logged LR (CSV)")
        p.add_argument("--from-step", type=_count, default=0, help="use only points at or after this step")
        p.add_argument("--step-col", help="name of the step column (CSV, JSON Lines; default: found by name, "
                       "e.g. step, _step, Step, iter)")
        p.add_argument("--loss-col", help="name of the loss column or TensorBoard tag (default: loss, then "
                       "val_loss, val/loss, ..., train/loss, Value)")
        p.add_argument("--lr-col", help="name of the LR column or TensorBoard tag (default: lr, learning_rate, "
                       "train/lr)")

    p = add_command("fit", help="fit a model to loss curves and write FITTED.json")
    p.add_argument("curves", nargs="+", help="loss-curve files: .csv (step,lr,loss or a W&B / TensorBoard "
                   "export), .jsonl, .json tracker export, a W&B run folder, or TensorBoard event files / run folders")
    p.add_argument("--model", default="sde-adam", choices=sorted(MODELS), help="model to fit")
    p.add_argument("--out", required=True, help="where to write the fitted model (JSON; - for stdout)")
    p.add_argument("--free", help="comma-separated parameters to fit, or a named set: 'default', and for an SDE "
                   "model 'sweep' (fit's choice for runs at several peak LRs) or 'transfer' (with the norm exponent, "
                   "the sharpening and the signal's mobility too: the optimal LR across horizons; a slower "
                   "fit). Default: fit's choice; an unknown name lists them all")
    p.add_argument("--starts", type=_positive, default=8, help="number of starting points")
    seed_option(p, "of the starting points")
    p.add_argument("--discrepancy", type=float, metavar="SIGMA",
                   help="the model's RMS log-loss error on a new run, for --band (default: estimated by "
                        "leaving each curve out; 0.0019 with fewer than 3 curves); 0 for bands of the "
                        "parameters alone")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.add_argument("--strict", action="store_true",
                   help=f"exit with {EXIT_POOR_FIT} when the fit does not converge or its mean training error "
                        "exceeds 1%%")
    p.add_argument("--quiet", action="store_true")
    curve_options(p)
    run_options(p, "the runs")
    p.set_defaults(run=_cmd_fit)

    p = add_command("predict", help="predict the loss curve of a schedule")
    fitted_argument(p)
    p.add_argument("--schedule", required=True, help="schedule spec, or a CSV with step,lr columns")
    p.add_argument("--warmup", type=_count, help="linear warmup steps before the first LR of a CSV")
    p.add_argument("--out", required=True, help="where to write step,lr,loss (CSV; - for stdout)")
    p.add_argument("--every", type=_positive, help="spacing of predicted steps")
    p.add_argument("--band", type=float, help="add the central band of this probability (e.g. 0.9) from the "
                   "fit's parameter uncertainty: columns loss_low,loss_high")
    seed_option(p, "of the band's parameter draws")
    p.add_argument("--plot", help="also save a figure (PNG)")
    p.add_argument("--force", action="store_true", help="overwrite existing --out / --plot files")
    p.add_argument("--quiet", action="store_true")
    run_options(p, "the run (default: the fitted runs' shared settings)")
    p.set_defaults(run=_cmd_predict)

    p = add_command("evaluate", help="compare a fitted model with observed curves")
    fitted_argument(p)
    p.add_argument("curves", nargs="+", help="held-out loss-curve files")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument("--plot", help="also save a figure (PNG)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --plot file")
    curve_options(p)
    run_options(p, "the runs (default: the fitted runs' shared settings)")
    p.set_defaults(run=_cmd_evaluate)

    p = add_command("search", help="rank candidate schedules by predicted final loss")
    fitted_argument(p)
    p.add_argument("--candidates", help="a file with one schedule spec per line")
    p.add_argument("--family", help="schedule kind for a grid, e.g. wsd, cosine, linear, constant")
    p.add_argument("--total", type=_positive, help="total steps of every grid candidate")
    p.add_argument("--grid", action="append", help="key=LOW:HIGH:N[:log] or key=a,b,c (repeat per key)")
    p.add_argument("--at", type=_positive, help="rank by the loss after this many steps (e.g. the last logged "
                   "one) instead of the final loss")
    ranking_options(p, top=None)
    p.add_argument("--precision", choices=PRECISIONS, default="float64",
                   help="float32: about 2x faster on a CPU; candidates within ~1e-4 relative may swap")
    p.add_argument("--json", action="store_true", help="print a JSON list, best first")
    p.add_argument("--plot", help="also save the best candidates' predicted curves (PNG)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --plot file")
    run_options(p, "every candidate (default: the fitted runs' shared settings)")
    p.set_defaults(run=_cmd_search)

    p = add_command("plan", help="plan the cooldown of a run in progress: rank its continuations")
    fitted_argument(p)
    p.add_argument("--observed", required=True, help="the run so far (.csv with step,lr,loss; .json export)")
    p.add_argument("--total", type=_positive, required=True, help="planned length of the run (steps)")
    p.add_argument("--until", type=_count, help="use the observed run only up to this step")
    p.add_argument("--shapes", default="linear,1-sqrt,cosine", help="cooldown shapes (default linear,1-sqrt,cosine)")
    p.add_argument("--final-lr", type=float, default=0.0, help="LR at the end of the cooldown (default 0)")
    ranking_options(p, top=10)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    curve_options(p)
    run_options(p, "the run (default: the file's, else the fitted runs' shared settings)")
    p.set_defaults(run=_cmd_plan)

    p = add_command("optimise", help="a free-form schedule by gradient descent on the predicted final loss")
    fitted_argument(p)
    p.add_argument("--total", type=_positive, required=True, help="steps of the run")
    p.add_argument("--peak", type=float, required=True, help="peak (largest) LR after warmup")
    p.add_argument("--min-lr", type=float, default=0.0, help="smallest LR allowed (default 0)")
    p.add_argument("--warmup", type=_count, default=0, help="linear warmup steps (default 0)")
    p.add_argument("--knots", type=_positive, default=64, help="knots of the free-form decay (default 64)")
    p.add_argument("--iterations", type=_positive, default=400, help="gradient steps (default 400)")
    p.add_argument("--out", help="write the optimised schedule's step,lr,loss (CSV; - for stdout)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--plot", help="also save the optimised and best family curves (PNG)")
    p.add_argument("--force", action="store_true", help="overwrite existing --out / --plot files")
    run_options(p, "the run (default: the fitted runs' shared settings)")
    p.set_defaults(run=_cmd_optimise)

    p = add_command("transfer", help="the optimal peak LR at a new horizon, from a sweep or a fitted model")
    p.add_argument("source", help="a sweep CSV (columns horizon,peak_lr,final_loss) or FITTED.json")
    p.add_argument("--trust", action="store_true", help="load a FITTED.json edited by hand")
    p.add_argument("--to-horizon", type=float, help="sweep: the horizon (steps) to predict LR* at")
    p.add_argument("--loss-noise", type=float, default=1e-3,
                   help="sweep: relative seed-to-seed spread of a final loss, for horizons with under 5 runs "
                        "(default 0.001)")
    p.add_argument("--family", help='fitted model: schedule family without peak and total, e.g. '
                   '"wsd:warmup=300,decay_frac=0.2,shape=linear,final=0"')
    p.add_argument("--horizons", help="fitted model: comma-separated horizons, e.g. 15000,25000,50000")
    p.add_argument("--lrs", help="fitted model: peak-LR grid, LOW:HIGH:N (log-spaced) or a list")
    p.add_argument("--level", type=float, default=0.9, help="probability of the intervals (default 0.9)")
    seed_option(p, "of a fitted model's parameter draws")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    run_options(p, "the runs (default: the fitted runs' shared settings)")
    p.set_defaults(run=_cmd_transfer)

    p = add_command("example", help="the built-in example: train, fit, predict, compare")
    p.add_argument("--out", default="optlaws-example", help="output folder")
    p.add_argument("--seeds", type=_positive, default=16, help="training runs averaged per schedule")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=_cmd_example)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = lambda msg, *a, **k: print(f"optlaws: warning: {msg}", file=sys.stderr)
            return args.run(args)
    except KeyboardInterrupt:
        print("optlaws: interrupted; no file was left half-written.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, TypeError, OSError, RuntimeError) as e:
        print(f"optlaws: error: {e}", file=sys.stderr)
        return 2
    except (ArithmeticError, LookupError, AttributeError) as e:
        # Input that slipped past the checks: still a named error, not a traceback.
        print(f"optlaws: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
