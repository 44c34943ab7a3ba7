"""Reading and writing loss curves: CSV (``step,lr,loss``) files and experiment-tracker JSON exports."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
import warnings
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO

import numpy as np
import yaml

from ._curves import InvalidCurveError, LossCurve
from ._run import Run
from ._schedules import Schedule, check_step_count, constant, cosine, from_array, parse_schedule, wsd
from ._wandb import run_file, run_history

__all__ = [
    "read_csv",
    "read_curve",
    "read_dataframe",
    "read_json",
    "read_jsonl",
    "read_wandb",
    "read_schedule_csv",
    "read_tensorboard",
    "schedule_from_config",
    "schedule_from_samples",
    "settings_from_config",
    "write_csv",
]

# Column names recognised (case-insensitive), in order of preference: the Multi-Power Law CSVs,
# W&B history exports (``_step``, ``train/loss``), TensorBoard scalar CSVs (``Step``, ``Value``)
# and their tags, nanoGPT-style logs. Validation loss is preferred over training loss.
STEP_COLUMNS = ("step", "_step", "iter", "iteration", "global_step", "trainer/global_step")
LOSS_COLUMNS = ("loss", "val_loss", "val/loss", "eval/loss", "eval_loss", "validation_loss", "valid/loss",
                "train_loss", "train/loss", "value")
LR_COLUMNS = ("lr", "learning_rate", "train/lr", "train/learning_rate", "lr-adamw", "lr-adam")
# Optional run-setting columns of a curve CSV (one value for the whole file).
SETTING_COLUMNS = {
    "batch_size": ("batch_size",),
    "weight_decay": ("weight_decay", "wd"),
    "momentum": ("momentum", "beta1", "b1"),
}
# The columns of a loss curve by role, for files and data frames alike: required, optional.
CURVE_COLUMNS = ({"step": STEP_COLUMNS, "loss": LOSS_COLUMNS}, {"lr": LR_COLUMNS, **SETTING_COLUMNS})


def schedule_from_samples(
    steps: np.ndarray,
    lr: np.ndarray,
    *,
    total: int | None = None,
    warmup: int | None = None,
    name: str = "samples",
) -> Schedule:
    """Per-step schedule from learning rates logged at some steps.

    Between logged steps the learning rate is interpolated linearly, except across a step change:
    where the LR jumps between two logged steps and is flat over the logged interval before and
    the one after (a WSD drop to a constant, a step decay), the earlier value is held up to the
    later logged step, where the new value is logged as the LR of that step. That is exact when
    the step of the change is itself logged, as loggers that log at every LR change do (the
    Multi-Power Law ``wsdcon`` runs log step 8000); linear interpolation spread that drop over
    the 64 steps before it, a 1.2-1.5% error of the predicted loss there. After the last logged
    step the LR is held. Before the first logged step it is unknown: with ``warmup`` it ramps
    linearly from 0 to the first logged value over ``warmup`` steps and is then held; without,
    the first value is held back to step 0 and a warning says so.
    """
    steps = np.asarray(steps, dtype=float)
    lr = np.asarray(lr, dtype=float)
    if not np.all(np.isfinite(steps)):
        raise InvalidCurveError(f"{name}: step {steps[~np.isfinite(steps)][0]} is not a number of steps.")
    bad = ~np.isfinite(lr)
    if bad.any():
        raise InvalidCurveError(f"{name}: learning rate is {lr[bad][0]} at step {int(steps[bad][0])}.")
    if (lr < 0).any():
        i = int(np.argmax(lr < 0))
        raise InvalidCurveError(f"{name}: negative learning rate {lr[i]:g} at step {int(steps[i])}.")
    back = np.flatnonzero(np.diff(steps) <= 0)
    if back.size:
        i = int(back[0])
        problem = "duplicate step" if steps[i + 1] == steps[i] else "steps are not sorted: step"
        raise InvalidCurveError(f"{name}: {problem} {int(steps[i + 1])} (logged point {i + 2}) after {int(steps[i])}; "
                                "the learning rates need one value per step, in order.")
    total = int(steps[-1]) if total is None else int(total)
    if total < 1:
        raise InvalidCurveError(f"{name}: the logged steps end at {total}; nothing to learn a schedule from.")
    try:
        check_step_count("the last logged step", total)
    except ValueError as e:
        raise InvalidCurveError(f"{name}: {e}") from None
    t = np.arange(total, dtype=float)
    per_step = np.interp(t, steps, lr)
    for i in _step_changes(lr):
        per_step[(t > steps[i]) & (t < steps[i + 1])] = lr[i]
    first = steps[0]
    if first > 0:
        if warmup is not None:
            ramp = lr[0] * t / max(warmup, 1)
            per_step = np.where(t < min(warmup, first), ramp, per_step)
        else:
            warnings.warn(
                f"{name}: learning rate before step {int(first)} is not in the data; holding "
                f"{lr[0]:g} back to step 0. Pass warmup=... (CLI --warmup) or a schedule spec if "
                "the run warmed up.",
                stacklevel=3,
            )
    return from_array(per_step, name=name)


def _step_changes(lr: np.ndarray) -> np.ndarray:
    """Gaps ``i`` (between logged points ``i`` and ``i + 1``) where the LR changes and is flat over
    the gap before and the gap after."""
    same = np.isclose(lr[1:], lr[:-1], rtol=1e-6, atol=0.0)
    gaps = np.arange(1, lr.size - 2)
    return gaps[~same[gaps] & same[gaps - 1] & same[gaps + 1]]


def _column(path: Path, header: list[str], role: str, choices: tuple[str, ...], named: str | None) -> int | None:
    """Index of the column for ``role``: the one ``named`` (an error if absent), else the first
    of ``choices`` present; a warning when several loss columns could be meant."""
    lowered = [h.strip().lower() for h in header]
    if named is not None:
        if named.strip().lower() not in lowered:
            raise InvalidCurveError(f"{path}: no column {named!r} (the {role} column asked for); columns: {header}.")
        return lowered.index(named.strip().lower())
    present = [c for c in choices if c in lowered]
    if role == "loss" and len(present) > 1:
        warnings.warn(f"{path.name}: several loss columns ({', '.join(present)}); using {present[0]!r}. "
                      "Pass loss_col=... (CLI --loss-col) to choose another.", stacklevel=4)
    return lowered.index(present[0]) if present else None


def _cells(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of text cells of a CSV file, or of a JSON Lines file (one object per line;
    a key missing from a line is a blank cell)."""
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}" if not path.is_dir() else f"{path} is a folder, not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the first column's name
    except UnicodeDecodeError as e:
        raise InvalidCurveError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start}).") from None
    if path.suffix.lower() != ".jsonl":
        rows = [r for r in csv.reader(text.splitlines()) if any(cell.strip() for cell in r)]
        return (rows[0], rows[1:]) if rows else ([], [])
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidCurveError(f"{path}: line {number} is not JSON ({e.msg}).") from None
        if not isinstance(record, dict):
            raise InvalidCurveError(f"{path}: line {number} is not a JSON object.")
        records.append(record)
    return _record_cells(records)


def _record_cells(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of text cells of logged records (a key missing from one is a blank cell)."""
    header = list(dict.fromkeys(key for record in records for key in record))
    return header, [["" if r.get(key) is None else str(r[key]) for key in header] for r in records]


def _read_table(path: Path, required: dict[str, tuple[str, ...]], optional: dict[str, tuple[str, ...]],
                named: dict[str, str | None] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Numeric columns by role (``{"step": (...aliases)}``) of a CSV or JSON Lines file, each as
    ``(values, present)``: a blank cell (a metric not logged on that row, as W&B exports have)
    is absent, not an error; any other cell that is not a number is."""
    return _table(path, *_cells(path), required, optional, named or {})


def _table(path: Path, header: list[str], body: list[list[str]], required: dict[str, tuple[str, ...]],
           optional: dict[str, tuple[str, ...]], named: dict[str, str | None]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """:func:`_read_table` of a header and rows of text cells (from a file, or a data frame)."""
    if not header:
        raise InvalidCurveError(f"{path}: the file is empty.")
    found = {role: _column(path, header, role, names, named.get(role))
             for role, names in {**required, **optional}.items()}
    missing = [role for role in required if found[role] is None]
    if missing:
        raise InvalidCurveError(
            f"{path}: needs a header with column(s) {', '.join(repr(m) for m in missing)}; found {header}."
        )
    if not body:
        raise InvalidCurveError(f"{path}: the file has a header but no data rows.")
    table = {}
    for role, c in found.items():
        if c is None:
            continue
        column, present = np.full(len(body), np.nan), np.ones(len(body), bool)
        for i, row in enumerate(body):
            cell = row[c].strip() if c < len(row) else ""
            if not cell:
                present[i] = False
                continue
            try:
                column[i] = float(cell)
            except ValueError:
                raise InvalidCurveError(
                    f"{path}: row {i + 2}, column {header[c]!r}: not a number: {cell!r}."
                ) from None
        table[role] = (column, present)
    if not table["step"][1].all():
        raise InvalidCurveError(f"{path}: row {int(np.argmin(table['step'][1])) + 2} has no step.")
    if not np.all(np.isfinite(table["step"][0])):
        row = int(np.argmin(np.isfinite(table["step"][0])))
        raise InvalidCurveError(f"{path}: row {row + 2}: step {table['step'][0][row]} is not a number of steps.")
    return table


def read_csv(
    path: str | Path,
    *,
    schedule: Schedule | str | None = None,
    warmup: int | None = None,
    name: str | None = None,
    step_col: str | None = None,
    loss_col: str | None = None,
    lr_col: str | None = None,
    **settings,
) -> LossCurve:
    """Read a loss curve from a CSV file with a header row (or a JSON Lines file, one object per
    logged step: :func:`read_jsonl`).

    Columns are found by name (case-insensitive), or named with ``step_col``, ``loss_col`` and
    ``lr_col`` (CLI ``--step-col`` ...): the step (``step``, ``_step``, ``iter``, ``Step``,
    ``global_step``), the loss (``loss``, then validation before training: ``val_loss``,
    ``val/loss``, ``eval/loss``, ..., ``train_loss``, ``train/loss``, and a TensorBoard scalar
    export's ``Value``) and optionally the learning rate at that step (``lr``,
    ``learning_rate``, ``train/lr``). That covers the Multi-Power Law CSVs, W&B history exports
    (``_step,train/loss,lr``; blank cells, where a metric was not logged on that row, are
    skipped) and TensorBoard scalar CSVs (``Wall time,Step,Value``). The schedule is
    ``schedule`` (an :class:`Schedule` or a spec string) when given, otherwise it is rebuilt
    from the ``lr`` column (see :func:`schedule_from_samples`).

    The run's settings come from a JSON or YAML config beside the file (the first of
    :data:`CONFIG_FILES`: ``{stem}.config.json``, ..., ``config.yaml``, Lightning's
    ``hparams.yaml``, Hydra's ``.hydra/config.yaml``; keys as in :func:`settings_from_config`,
    W&B's ``{"value": ...}`` entries unwrapped), then from optional columns
    ``batch_size``, ``weight_decay`` (or ``wd``) and ``momentum`` (or ``beta1``), each holding
    one value for the whole run; ``settings`` given here (``batch_size=``, ...; CLI
    ``--batch-size`` ...) take precedence over both. Settings recorded nowhere take the model's
    values for unrecorded settings.
    """
    path = Path(path)
    table = _read_table(path, *CURVE_COLUMNS, {"step": step_col, "loss": loss_col, "lr": lr_col})
    return _curve_from_table(path, table, schedule, warmup, name or path.stem, settings)


def read_dataframe(
    frame,
    *,
    schedule: Schedule | str | None = None,
    warmup: int | None = None,
    name: str = "dataframe",
    step_col: str | None = None,
    loss_col: str | None = None,
    lr_col: str | None = None,
    **settings,
) -> LossCurve:
    """Read a loss curve from a data frame (pandas, polars, or any table with ``columns`` and a
    column per ``frame[name]``), as :func:`read_csv` reads a CSV file: the same column names
    found, the same options. A missing value (NaN, None) is a metric not logged on that row.
    :meth:`LossCurve.from_dataframe` calls this."""
    where = Path(f"<data frame {name!r}>")
    try:
        header = [str(c) for c in frame.columns]
        columns = [np.asarray(frame[c]) for c in frame.columns]
    except (AttributeError, KeyError, TypeError) as e:
        raise TypeError(f"`frame` must be a data frame (named columns), got {type(frame).__name__}: {e}") from None
    body = [[_cell(column[i]) for column in columns] for i in range(len(columns[0]) if columns else 0)]
    table = _table(where, header, body, *CURVE_COLUMNS, {"step": step_col, "loss": loss_col, "lr": lr_col})
    return _curve_from_table(where, table, schedule, warmup, name, settings, file=False)


def _cell(value) -> str:
    """A data-frame value as the text cell :func:`_table` reads ('' when missing)."""
    if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return ""
    return repr(float(value)) if isinstance(value, (float, np.floating)) else str(value)


def _curve_from_table(path: Path, table: dict, schedule, warmup: int | None, name: str, settings: dict, *,
                      file: bool = True, config: tuple[dict, object] | None = None) -> LossCurve:
    """A curve from the columns of :func:`_read_table` (roles step, loss and optionally lr and
    the run settings), with the settings of a config beside the log ``file``, or ``config``:
    the settings the log itself records and what ``metadata["config"]`` keeps of them."""
    steps = table["step"][0]
    given = _given(settings)
    if config is None:
        config = _settings_beside(path, given=given) if file else ({}, None)
    beside, config = config
    recorded = dict(beside)
    for setting in SETTING_COLUMNS:
        if setting in table:
            values = np.unique(table[setting][0][table[setting][1]])
            if values.size > 1:
                raise InvalidCurveError(
                    f"{path}: column {setting!r} changes within the run ({values[0]:g} to {values[-1]:g}); "
                    "a run has one value of each setting."
                )
            if values.size:
                recorded[setting] = float(values[0])
    if isinstance(schedule, str):
        schedule = parse_schedule(schedule)
    if schedule is None:
        if "lr" not in table or not table["lr"][1].any():
            raise InvalidCurveError(
                f"{path}: no 'lr' column and no schedule given; pass schedule=... "
                "(CLI: --schedule SPEC) to say which learning rates produced this curve."
            )
        lr, logged = table["lr"]
        # Held after the last logged LR, up to the last logged step of any column.
        schedule = schedule_from_samples(steps[logged], lr[logged], total=max(int(np.max(steps)), 1), warmup=warmup,
                                         name=name)
    loss, logged = table["loss"]
    if not logged.any():
        raise InvalidCurveError(f"{path}: the loss column is blank on every row.")
    run = _run(path, schedule, {**recorded, **given})
    metadata = {"source": str(path), **({"config": config if isinstance(config, dict) else str(config)}
                                        if config else {})}
    return LossCurve(steps[logged], loss[logged], run, name=name, metadata=metadata)


# Config files that record a log's run settings, looked for beside it in this order ({stem}: the
# log's name): a config of this log, then a run folder's config (PyTorch Lightning writes
# hparams.yaml beside its metrics.csv and event files, Hydra .hydra/config.yaml in its run folder).
CONFIG_FILES = ("{stem}.config.json", "{stem}.config.yaml", "{stem}.config.yml", "config.json", "config.yaml",
                "config.yml", "hparams.yaml", ".hydra/config.yaml")


def _settings_beside(path: Path, *, given: Collection[str] = ()) -> tuple[dict[str, float], Path | None]:
    """Run settings from a JSON or YAML config beside a log (:data:`CONFIG_FILES`; W&B's
    ``{"key": {"value": ...}}`` entries unwrapped; ``given`` settings not looked up), and the
    config's path."""
    folder = path if path.is_dir() else path.parent
    for pattern in CONFIG_FILES:
        config = folder / pattern.format(stem=path.stem)
        if config.is_file():
            return settings_from_config(_unwrapped(_read_config(config, path)), given=given), config
    return {}, None


def _read_config(config: Path, log: Path) -> dict:
    """The mapping a JSON or YAML config file holds (YAML read safely: no Python objects)."""
    where = f"{config} (the config beside {log.name})"
    try:
        text = config.read_text(encoding="utf-8-sig")
        document = json.loads(text) if config.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidCurveError(f"{where}: not {'JSON' if config.suffix == '.json' else 'text'} ({e}).") from None
    except yaml.YAMLError as e:
        raise InvalidCurveError(f"{where}: not YAML that can be read safely ({e}).") from None
    if not isinstance(document, dict):
        raise InvalidCurveError(f"{where}: not a mapping of keys to values.")
    return document


def _unwrapped(config: dict) -> dict:
    """A tracker config with W&B's ``{"key": {"value": ...}}`` entries unwrapped."""
    return {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in config.items()}


def read_wandb(
    path: str | Path,
    *,
    schedule: Schedule | str | None = None,
    warmup: int | None = None,
    name: str | None = None,
    step_col: str | None = None,
    loss_col: str | None = None,
    lr_col: str | None = None,
    **settings,
) -> LossCurve:
    """Read a loss curve from a W&B run folder (``wandb/run-<time>-<id>``, an offline run's
    ``wandb/offline-run-...``, ``wandb/latest-run``) or its ``run-<id>.wandb`` file, no upload
    needed: what ``wandb.log`` recorded, and the run's settings from its ``wandb.config``.

    The logged keys are found as :func:`read_csv` finds columns (``_step``, ``train/loss``,
    ``val/loss``, ``lr``, ...; nested keys joined by ``.``) and take the same options. Settings
    come from the config (``batch_size``, ``weight_decay``, ``beta1`` or ``momentum``, as in
    :func:`settings_from_config`); ``settings`` given here take precedence, and
    ``curve.metadata["config"]`` is the whole config. Needs ``pip install 'optlaws[wandb]'``
    (W&B's record format); a run still being written is read up to its last whole record.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    file = run_file(path)
    rows, config = run_history(file)
    if not rows:
        raise InvalidCurveError(f"{file}: the run logged nothing (no wandb.log rows).")
    table = _table(file, *_record_cells(rows), *CURVE_COLUMNS, {"step": step_col, "loss": loss_col, "lr": lr_col})
    config = _unwrapped(config)
    return _curve_from_table(file, table, schedule, warmup, name or (path.resolve().name if path.is_dir() else file.stem),
                             settings, config=(settings_from_config(config, given=_given(settings)), config))


def _is_wandb_run(path: Path) -> bool:
    return path.suffix == ".wandb" or (path.is_dir() and any(path.glob("run-*.wandb")))


def read_tensorboard(
    path: str | Path,
    *,
    loss_tag: str | None = None,
    lr_tag: str | None = None,
    schedule: Schedule | str | None = None,
    warmup: int | None = None,
    name: str | None = None,
    **settings,
) -> LossCurve:
    """Read a loss curve from TensorBoard event files (a run folder, or one
    ``events.out.tfevents.*`` file), with TensorBoard's own reader (``pip install
    'optlaws[tensorboard]'``).

    The loss and LR are scalar tags, found as :func:`read_csv` finds columns (``loss``,
    ``val/loss``, ``train/loss``, ...; ``lr``, ``learning_rate``, ``train/lr``) or named with
    ``loss_tag`` and ``lr_tag`` (CLI ``--loss-col``, ``--lr-col``). A step logged twice (a
    resumed run) keeps its latest value.
    """
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except ImportError:
        raise ImportError("reading TensorBoard event files needs the `tensorboard` package: "
                          "pip install 'optlaws[tensorboard]'") from None
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    accumulator = event_accumulator.EventAccumulator(str(path), size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    tags = accumulator.Tags().get("scalars", [])
    if not tags:
        raise InvalidCurveError(f"{path}: no scalar summaries in the event files.")
    chosen = {"loss": _column(path, tags, "loss", LOSS_COLUMNS, loss_tag),
              "lr": _column(path, tags, "lr", LR_COLUMNS, lr_tag)}
    if chosen["loss"] is None:
        raise InvalidCurveError(f"{path}: no loss tag among {tags}; pass loss_tag=... (CLI --loss-col).")
    series = {role: {event.step: event.value for event in accumulator.Scalars(tags[i])}
              for role, i in chosen.items() if i is not None}
    steps = np.array(sorted(set().union(*series.values())), dtype=float)
    table = {"step": (steps, np.ones(steps.size, bool))}
    for role, values in series.items():
        table[role] = (np.array([values.get(int(t), np.nan) for t in steps]), np.isin(steps, list(values)))
    name = name or (path.name if path.is_dir() else path.parent.name)
    return _curve_from_table(path, table, schedule, warmup, name, settings)


def read_jsonl(path: str | Path, **kwargs) -> LossCurve:
    """Read a loss curve from a JSON Lines log: one object per logged step, such as
    ``{"step": 100, "train/loss": 3.2, "lr": 0.001}``. Keys are found as :func:`read_csv` finds
    columns (and take the same options); a key missing from a line is not logged there."""
    return read_csv(path, **kwargs)


def _run(path: Path, schedule: Schedule, settings: dict) -> Run:
    """The run of a curve file, with an error that names the file."""
    try:
        return Run(schedule, **settings)
    except ValueError as e:
        raise InvalidCurveError(f"{path}: {e}") from None


def _given(settings: dict) -> dict:
    """The run settings that were given (``None`` means "not given")."""
    return {key: value for key, value in settings.items() if value is not None}


# The keys of each run setting in a tracker config, in order of preference; ``betas`` holds
# (beta1, beta2).
CONFIG_KEYS = {
    "batch_size": ("batch_size",),
    "acc_steps": ("acc_steps", "gradient_accumulation_steps", "accumulate_grad_batches"),
    "weight_decay": ("weight_decay",),
    "momentum": ("beta1", "momentum", "betas"),
}


def _leaves(config: dict, prefix: str = "") -> Iterator[tuple[str, object]]:
    """``(dotted.key, value)`` for every value of a nested config."""
    for key, value in config.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _number(key: str, value) -> float | None:
    """A config value as a number, if it is one (the first of ``betas``)."""
    if key == "betas" and isinstance(value, (list, tuple)) and value:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _config_setting(config: dict, setting: str) -> float | None:
    """One setting of a config: at the top level, else a nested key of that name, where every
    nested key of that name agrees (a warning names them where they do not)."""
    keys = CONFIG_KEYS[setting]
    for key in keys:
        if (value := _number(key, config.get(key))) is not None:
            return value
    found = {}
    for dotted, raw in _leaves(config):
        key = dotted.rsplit(".", 1)[-1]
        if key in keys and (value := _number(key, raw)) is not None:
            found[dotted] = value
    if len(set(found.values())) > 1:
        listed = ", ".join(f"{k}={v:g}" for k, v in found.items())
        warnings.warn(f"the config records several values of {setting} ({listed}); none is used: give "
                      f"{setting}=... (CLI --{setting.replace('_', '-')}).", stacklevel=3)
        return None
    return next(iter(found.values()), None)


def settings_from_config(config: dict, *, given: Collection[str] = ()) -> dict[str, float]:
    """Run settings recorded in a tracker config (llm-baselines, nanoGPT, PyTorch Lightning,
    Hydra and Hugging Face keys; nested sections are searched, :data:`CONFIG_KEYS`).

    ``batch_size`` is sequences per update: ``batch_size`` times the gradient accumulation
    steps (``acc_steps``, ``gradient_accumulation_steps`` or ``accumulate_grad_batches``);
    ``weight_decay``; ``momentum`` is ``beta1`` (Adam), ``momentum`` (SGD) or the first of
    ``betas``. A key found at the top level is used; otherwise a nested one (``optimizer.betas``),
    unless nested keys of that name disagree (``data.batch_size`` and ``eval.batch_size``), which
    a warning reports and which leaves the setting unrecorded. Settings named in ``given`` (the
    caller has them) are not looked up, so their keys are never reported.
    """
    found = {}
    for setting in ("batch_size", "weight_decay", "momentum"):
        if setting in given:
            continue
        if (value := _config_setting(config, setting)) is not None:
            found[setting] = value
    if "batch_size" in found:
        found["batch_size"] *= _config_setting(config, "acc_steps") or 1.0
    return found


def read_schedule_csv(path: str | Path, *, warmup: int | None = None) -> Schedule:
    """A schedule from a CSV file with columns ``step`` and ``lr`` (other columns are ignored)."""
    path = Path(path)
    table = _read_table(path, {"step": STEP_COLUMNS, "lr": LR_COLUMNS}, {})
    lr, logged = table["lr"]
    return schedule_from_samples(table["step"][0][logged], lr[logged], warmup=warmup, name=path.stem)


def schedule_from_config(config: dict, *, name: str = "config") -> Schedule:
    """Rebuild the schedule of a run from its tracker config (keys of the llm-baselines trainer).

    Understood: ``scheduler`` ``"wsd"`` (``wsd_fract_decay``, ``decay_type`` linear/sqrt/cosine,
    ``wsd_final_lr_scale``), ``"cos"`` (to ``cos_final_lr``, or 10% of ``lr`` when it is negative;
    cosine-shaped warmup) and ``"none"``/``"constant"``; all with ``lr``, ``iterations``,
    ``warmup_steps``.
    """
    missing = [k for k in ("lr", "iterations", "scheduler") if k not in config]
    if missing:
        raise InvalidCurveError(f"{name}: config lacks {missing}; cannot rebuild the schedule.")
    peak, total = float(config["lr"]), int(config["iterations"])
    warmup = int(config.get("warmup_steps", 0))
    kind = config["scheduler"]
    if kind == "wsd":
        shape = {"linear": "linear", "sqrt": "sqrt", "cosine": "cosine", "exp": "exponential"}.get(
            config.get("decay_type", "linear")
        )
        if shape is None:
            raise InvalidCurveError(f"{name}: unknown wsd decay_type {config.get('decay_type')!r}.")
        final = peak * float(config.get("wsd_final_lr_scale", 0.0))
        return wsd(peak, total, decay_frac=float(config.get("wsd_fract_decay", 0.0)), shape=shape,
                   final=final, warmup=warmup, name=name)
    if kind == "cos":
        final = float(config.get("cos_final_lr", -1))
        final = 0.1 * peak if final < 0 else final
        lr = np.array(cosine(peak, total, final=final, warmup=warmup).lr)
        t = np.arange(min(warmup, total))
        lr[t] = peak * (1 - np.cos(np.pi * t / max(warmup, 1))) / 2
        return from_array(lr, name=name)
    if kind in ("none", "constant"):
        return constant(peak, total, warmup=warmup, name=name)
    raise InvalidCurveError(f"{name}: unknown scheduler {kind!r} in config (known: wsd, cos, none).")


def _history_series(history: dict, key: str, column: str, path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Sorted, de-duplicated ``(iter, column)`` of one history table, with notes on what was fixed."""
    table = history.get(key)
    if not isinstance(table, dict) or "iter" not in table or column not in table:
        raise InvalidCurveError(f"{path}: history has no '{key}' table with 'iter' and '{column}'.")
    steps = np.asarray(table["iter"], dtype=float)
    values = np.asarray(table[column], dtype=float)
    if steps.shape != values.shape:
        raise InvalidCurveError(
            f"{path}: history '{key}' has {steps.size} 'iter' but {values.size} '{column}' entries."
        )
    notes = []
    if np.any(np.diff(steps) < 0):
        notes.append(f"'{key}' steps were out of order (a resumed run); sorted them")
    # A resumed run logs the steps after its checkpoint again: the later entries win.
    unique, last_from_end = np.unique(steps[::-1], return_index=True)
    kept = values[::-1][last_from_end]
    if unique.size < steps.size:
        notes.append(f"dropped {steps.size - unique.size} repeated '{key}' steps (kept the latest of each)")
    return unique, kept, notes


def read_json(
    path: str | Path,
    *,
    series: str = "val",
    schedule: Schedule | str | None = None,
    name: str | None = None,
    **settings,
) -> LossCurve:
    """Read a run exported from an experiment tracker: ``{"config", "history", ...}``.

    ``history[series]`` holds ``iter`` and ``{series}_loss`` (``series`` is ``"val"`` or
    ``"train"``). The schedule is ``schedule`` when given, else rebuilt from ``config``
    (:func:`schedule_from_config`), else from ``history["train"]["train_lr"]``. Fragments are
    read as they are: steps are sorted and de-duplicated, and what was found (a history that
    starts late or ends before ``config["iterations"]``) is recorded in ``metadata["notes"]`` and
    reported by a warning. The run's settings (batch size, weight decay, momentum) come from
    ``config`` (:func:`settings_from_config`); ``settings`` given here take precedence.
    """
    path = Path(path)
    name = name or path.stem
    if not path.is_file():
        raise FileNotFoundError(f"no such loss-curve file: {path}")
    try:
        record = json.loads(path.read_text() or "null")
    except json.JSONDecodeError as e:
        raise InvalidCurveError(f"{path}: not valid JSON ({e}).") from None
    if not isinstance(record, dict) or "history" not in record:
        raise InvalidCurveError(f"{path}: expected a JSON object with a 'history' (and 'config').")
    history, config = record["history"], record.get("config", {})
    if series not in ("val", "train"):
        raise ValueError(f"`series` must be 'val' or 'train', got {series!r}.")
    steps, loss, notes = _history_series(history, series, f"{series}_loss", path)
    if steps.size == 0:
        raise InvalidCurveError(f"{path}: history '{series}' is empty.")
    if isinstance(schedule, str):
        schedule = parse_schedule(schedule)
    if schedule is None:
        if config.get("scheduler") is not None:
            schedule = schedule_from_config(config, name=name)
        else:
            lr_steps, lr, lr_notes = _history_series(history, "train", "train_lr", path)
            notes += lr_notes
            schedule = schedule_from_samples(lr_steps, lr, name=name)
    total = int(config.get("iterations", schedule.total_steps))
    if steps[0] > 0:
        notes.append(f"history starts at step {int(steps[0])}")
    if steps[-1] < total - max(np.median(np.diff(steps)) if steps.size > 1 else 0, 1):
        notes.append(f"history ends at step {int(steps[-1])} of {total}")
    beyond = steps > schedule.total_steps
    if beyond.any():
        notes.append(f"dropped {int(beyond.sum())} points after the schedule's {schedule.total_steps} steps")
        steps, loss = steps[~beyond], loss[~beyond]
    if notes:
        warnings.warn(f"{path.name}: " + "; ".join(notes) + ".", stacklevel=2)
    metadata = {"source": str(path), "config": config, "series": series, "notes": notes}
    given = _given(settings)
    run = _run(path, schedule, {**settings_from_config(config, given=given), **given})
    return LossCurve(steps, loss, run, name=name, metadata=metadata)


def read_curve(path: str | Path, **kwargs) -> LossCurve:
    """Read a loss curve, choosing the reader from the file: ``.csv``, ``.json`` (a tracker
    export), ``.jsonl``, a W&B run folder or its ``.wandb`` file, or TensorBoard event files (a
    folder, or a name with ``tfevents``).

    The column options ``step_col``, ``loss_col`` and ``lr_col`` apply to CSV, JSON Lines and W&B runs;
    for event files ``loss_col`` and ``lr_col`` name the tags."""
    path = Path(path)
    if _is_wandb_run(path):
        return read_wandb(path, **kwargs)
    if path.is_dir() or "tfevents" in path.name:
        tags = {"loss_tag": kwargs.pop("loss_col", None), "lr_tag": kwargs.pop("lr_col", None)}
        if kwargs.pop("step_col", None) is not None:
            raise ValueError(f"{path}: TensorBoard event files record each value's step; step_col (CLI "
                             "--step-col) names a column of a CSV or JSON Lines file.")
        return read_tensorboard(path, **tags, **kwargs)
    readers = {".csv": read_csv, ".json": read_json, ".jsonl": read_jsonl}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise InvalidCurveError(
            f"{path}: unknown file format {path.suffix or '(no extension)'!r}; readable formats: "
            f"{', '.join(sorted(readers))}, TensorBoard event files and W&B run folders."
        )
    if reader is read_json:
        columns = [k for k in ("step_col", "loss_col", "lr_col") if kwargs.pop(k, None) is not None]
        if columns:
            raise ValueError(f"{path}: {', '.join(columns)} name columns of a CSV, JSON Lines or event file; "
                             "a tracker export's JSON has fixed keys (series='val' or 'train').")
    return reader(path, **kwargs)


def _number_text(value) -> str:
    """A float array element as NumPy's shortest text in its own precision (``inf`` as ``inf``)."""
    if isinstance(value, np.floating) and np.isfinite(value):
        return str(value)
    return repr(float(value))


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success it is flushed to disk and
    renamed over ``path`` in one step, so a write that fails or is interrupted partway leaves the
    previous file intact (and no temporary file behind). The folder must exist: nothing is
    created outside it."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the folder {path.parent} does not exist.")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder.")
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode, **({"newline": ""} if "b" not in mode else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def text_output(target: str | Path | IO) -> contextlib.AbstractContextManager[IO]:
    """Where text goes: an open stream as it is (``sys.stdout`` for ``--out -``), a path through
    :func:`atomic_write`."""
    return contextlib.nullcontext(target) if hasattr(target, "write") else atomic_write(target)


def write_csv(path: str | Path | IO, steps, loss, lr, **columns) -> None:
    """Write columns ``step,lr,loss`` and any further named ``columns`` of the same length to a
    file (atomically: see :func:`atomic_write`) or an open text stream, each number as the
    shortest text that reads back as the same value in its array's precision."""
    values = [np.asarray(lr), np.asarray(loss), *(np.asarray(v) for v in columns.values())]
    with text_output(path) as f:
        writer = csv.writer(f)
        writer.writerow(["step", "lr", "loss", *columns])
        for s, *row in zip(np.asarray(steps), *values):
            writer.writerow([int(s), *map(_number_text, row)])  # a float32 0.002 as 0.002, not 0.002000000095
