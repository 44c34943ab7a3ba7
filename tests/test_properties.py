"""Property-based tests (hypothesis): schedule specs round-trip, bad curves and files are refused
with a named error and nothing else, predictions do not depend on the integration block, the
expected loss stays finite below the stability edge, and the command line never shows a traceback."""

import dataclasses
import json
import math

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import optlaws
from conftest import constant_and_cosine_curves
from optlaws._schedules import _BUILDERS
from optlaws.cli import main

# JAX compiles on first use: examples are timed by their count, not a deadline.
SETTINGS = settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])

lrs = st.floats(1e-6, 1.0)
totals = st.integers(1, 400)


@st.composite
def specs(draw):
    """A builder name and keyword arguments, valid or not (a final LR above the peak, a warmup
    longer than the run, a cycle longer than the run...)."""
    kind = draw(st.sampled_from(sorted(_BUILDERS)))
    keys = {"peak": draw(lrs), "total": draw(totals)}
    optional = {
        "warmup": st.integers(0, 500),
        "final": st.floats(0.0, 1.0),
        "decay_frac": st.floats(0.0, 1.0),
        "shape": st.sampled_from(["linear", "cosine", "1-sqrt", "sqrt", "exponential"]),
        "milestones": st.lists(st.floats(0.0, 1.0), min_size=1, max_size=3),
        "factor": st.floats(0.01, 1.0),
        "timescale": st.floats(1.0, 1000.0),
        "period": st.integers(1, 500),
    }
    accepted = {"constant": ["warmup"], "cosine": ["warmup", "final"], "linear": ["warmup", "final"],
                "wsd": ["warmup", "final", "decay_frac", "shape"], "step": ["warmup", "milestones", "factor"],
                "inverse_sqrt": ["warmup", "timescale"], "cyclic": ["final", "shape", "period"]}[kind]
    for key in accepted:
        if key == "period" or draw(st.booleans()):
            keys[key] = draw(optional[key])
    if kind == "cyclic" and keys.get("shape") in ("sqrt", "1-sqrt", "exponential"):
        keys["shape"] = "cosine"
    return kind, keys


def build(kind, keys):
    try:
        return _BUILDERS[kind](**keys)
    except ValueError as e:
        return e


@SETTINGS
@given(specs())
def test_a_spec_builds_what_its_builder_builds(spec):
    """``parse_schedule(schedule_spec(kind, **keys))`` is ``BUILDER(**keys)``: the same learning
    rates bit for bit, or the same refusal."""
    kind, keys = spec
    direct = build(kind, keys)
    try:
        parsed = optlaws.parse_schedule(optlaws.schedule_spec(kind, **keys))
    except ValueError as e:
        assert isinstance(direct, ValueError), f"the spec refused what the builder built: {e}"
        return
    assert not isinstance(direct, ValueError), f"the spec built what the builder refused: {direct}"
    np.testing.assert_array_equal(np.asarray(parsed.lr), np.asarray(direct.lr))


@SETTINGS
@given(st.lists(specs(), min_size=2, max_size=3))
def test_phases_joined_by_plus_run_one_after_another(phases):
    built = [build(kind, keys) for kind, keys in phases]
    if any(isinstance(b, ValueError) for b in built):
        return
    joined = optlaws.parse_schedule("+".join(optlaws.schedule_spec(kind, **keys) for kind, keys in phases))
    np.testing.assert_array_equal(np.asarray(joined.lr), np.concatenate([np.asarray(b.lr) for b in built]))


numbers = st.floats(allow_nan=True, allow_infinity=True, width=64)


@SETTINGS
@given(st.integers(0, 30).flatmap(lambda n: st.tuples(
    arrays(np.float64, n, elements=st.one_of(st.integers(-5, 10**6).map(float), numbers)),
    arrays(np.float64, n, elements=numbers),
    arrays(np.float64, st.integers(0, 40), elements=numbers))))
def test_any_curve_loads_or_raises_invalid_curve_error(data):
    steps, loss, lr = data
    try:
        curve = optlaws.LossCurve.from_arrays(steps, loss, lr, name="random")
    except optlaws.InvalidCurveError:
        return
    assert np.all(np.diff(curve.steps) > 0) and np.all(np.isfinite(curve.loss)) and np.all(curve.loss > 0)


def json_paths(node, prefix=()):
    """Every path into a parsed JSON document (dict keys and list indices)."""
    yield prefix
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from json_paths(child, (*prefix, key))


@pytest.fixture(scope="module")
def fitted_document(tmp_path_factory):
    """A FITTED.json with an uncertainty section, as ``optlaws fit`` writes one."""
    truth = optlaws.AdamModel(reference_lr=1e-3).replace(loss_inf=2.6, noise_amplitude=300.0)
    curves = constant_and_cosine_curves(truth, 2000, np.arange(200, 2001, 100))
    result = optlaws.fit(optlaws.AdamModel(), curves, num_starts=1, progress=False)
    path = tmp_path_factory.mktemp("fitted") / "fitted.json"
    optlaws.save_model(path, result.model, result)
    document = json.loads(path.read_text())
    return document, optlaws.load_fitted(path)


corruptions = st.sampled_from(["remove", None, "text", -1.0, 1e308, "inf", [], {}, True, 0, 10**12])


@SETTINGS
@given(data=st.data())
def test_any_corrupted_fitted_file_loads_identically_or_names_the_problem(fitted_document, tmp_path_factory, data):
    """One field removed or replaced: the file loads to the same model and uncertainty, or
    ``load_fitted`` raises ValueError (a message naming what is wrong), with or without ``trust``."""
    original, loaded = fitted_document
    document = json.loads(json.dumps(original))
    path = data.draw(st.sampled_from([p for p in json_paths(document) if p]))
    value = data.draw(corruptions)
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if value == "remove":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    file = tmp_path_factory.mktemp("corrupt") / "fitted.json"
    file.write_text(json.dumps(document))
    for trust in (False, True):
        try:
            result = optlaws.load_fitted(file, trust=trust)
        except ValueError as e:
            assert str(file) in str(e)
            continue
        if not trust:
            assert result.model.values() == loaded.model.values()
            assert result.run_settings == loaded.run_settings
            assert (result.uncertainty is None) == (loaded.uncertainty is None)


STEPS = np.arange(100, 3001, 100)


@pytest.fixture(scope="module")
def loss_at():
    return jax.jit(lambda model, run: model.loss(run, STEPS))


@st.composite
def smooth_runs(draw):
    """WSD, cosine, linear and constant runs below the stability edge of the default landscape:
    effective peak LR ``peak * sqrt(batch / reference batch)`` at most the reference LR, so the
    stiffest mode (``h = 1 / reference_lr``) stays stable."""
    batch = draw(st.floats(0.25, 4.0))
    peak = draw(st.floats(1e-5, 1e-3 / math.sqrt(batch)))
    warmup, final = draw(st.integers(0, 500)), draw(st.floats(0.0, 0.5)) * peak
    schedule = {
        "wsd": lambda: optlaws.wsd(peak, 3000, warmup=warmup, decay_frac=draw(st.floats(0.05, 0.9)), final=final),
        "cosine": lambda: optlaws.cosine(peak, 3000, warmup=warmup, final=final),
        "linear": lambda: optlaws.linear(peak, 3000, warmup=warmup, final=final),
        "constant": lambda: optlaws.constant(peak, 3000, warmup=warmup),
    }[draw(st.sampled_from(["wsd", "cosine", "linear", "constant"]))]()
    return optlaws.Run(schedule, batch_size=batch, weight_decay=draw(st.floats(0.0, 0.3)),
                       momentum=draw(st.floats(0.0, 0.95)))


@SETTINGS
@given(run=smooth_runs(), block=st.sampled_from([4, 16]))
def test_predictions_do_not_depend_on_the_block(loss_at, run, block):
    """The segment approximation's documented error (``_sde/segments.py``): past the warmup ramp,
    ``block <= 16`` moves a smooth schedule's prediction by under 1e-3 from the exact ``block=1``."""
    model = optlaws.AdamModel()
    with optlaws.float64():
        exact = np.asarray(loss_at(dataclasses.replace(model, block=1), run))
        coarse = np.asarray(loss_at(dataclasses.replace(model, block=block), run))
    warmup = int(np.argmax(np.asarray(run.lr) >= np.max(np.asarray(run.lr))))
    past = STEPS >= warmup + 100
    assert np.max(np.abs(coarse / exact - 1)[past]) < 1e-3


@SETTINGS
@given(run=smooth_runs(), noise=st.floats(1.0, 1e4), exponent=st.floats(0.1, 1.5), loss_inf=st.floats(0.5, 5.0))
def test_the_expected_loss_is_finite_and_above_its_floor_below_the_edge(loss_at, run, noise, exponent, loss_inf):
    """Below the stability edge the loss is finite and never below ``loss_inf``, whatever the
    landscape's noise and signal."""
    model = optlaws.AdamModel().replace(noise_amplitude=noise, signal_exponent=exponent, loss_inf=loss_inf)
    loss = np.asarray(loss_at(model, run))
    assert np.all(np.isfinite(loss)) and np.all(loss >= loss_inf * (1 - 1e-6))


@pytest.fixture(scope="module")
def fitted_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "fitted.json"
    optlaws.save_model(path, optlaws.AdamModel())
    return path


valid_looking = st.one_of(
    st.binary(max_size=300),
    st.lists(st.tuples(numbers, numbers, numbers), max_size=8).map(
        lambda rows: ("step,lr,loss\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows)).encode()),
    st.dictionaries(st.sampled_from(["config", "history", "format", "model", "version", "steps"]),
                    st.one_of(st.none(), numbers.filter(math.isfinite), st.text(max_size=5),
                              st.lists(st.integers(), max_size=3)), max_size=4).map(lambda d: json.dumps(d).encode()),
)


@SETTINGS
@given(content=valid_looking, suffix=st.sampled_from([".csv", ".json", ".jsonl", ".txt", ""]))
def test_the_command_line_never_shows_a_traceback(fitted_file, tmp_path_factory, capsys, content, suffix):
    """Random bytes and random valid-looking files, as a curve or as a FITTED.json: exit 0 or
    ``optlaws: error:`` with exit 2, never a traceback."""
    folder = tmp_path_factory.mktemp("fuzz")
    file = folder / f"input{suffix}"
    file.write_bytes(content)
    for argv in (["evaluate", str(fitted_file), str(file)],
                 ["predict", str(file), "--schedule", "constant:peak=1e-3,total=100", "--out", str(folder / "p.csv")]):
        code = main(argv)
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert code == 0 or (code == 2 and "optlaws: error:" in err), (argv, code, err)
