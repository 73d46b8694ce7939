"""The scripts in examples/ run end to end on tiny settings (TensorFlow backend:
one of them exports a SavedModel), and README.md names only real things."""

import ast
import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import shlex

import numpy as np
import pytest

from keras_lottery import cli, controls
from tests.conftest import tensorflow_only

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
README = os.path.join(ROOT, "README.md")


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@tensorflow_only
def test_find_ticket_imp(tmp_path):
    out = tmp_path / "out"
    result = load_example("find_ticket_imp.py").main(
        ["--rounds", "1", "--epochs", "2", "--rewind", "5it", "--out", str(out)]
    )
    assert [r.round for r in result.rounds] == [0, 1]
    assert (out / "lenet.ticket.npz").exists()
    assert (out / "lenet_saved_model" / "saved_model.pb").exists()


def test_continuous_sparsification(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 8, 8, 3), dtype=np.uint8)
    y = rng.integers(0, 3, 60)
    np.savez(
        tmp_path / "d.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:]
    )
    result = load_example("continuous_sparsification.py").main(
        [
            "--data",
            str(tmp_path / "d.npz"),
            "--depth",
            "8",
            "--width",
            "4",
            "--epochs",
            "2",
            "--rounds",
            "1",
            "--validation-size",
            "8",
        ]
    )
    assert result.epochs == {"search": 2, "ticket": 2, "total": 4}


@pytest.mark.backend_neutral  # the issue asks for TF and JAX
def test_gradual_pruning_fit(tmp_path):
    import keras_lottery as kl

    report, pruning, plain = load_example("gradual_pruning_fit.py").main(
        ["--epochs", "2", "--hidden", "16", "8", "--limit", "200"]
        + ["--batch-size", "32", "--out", str(tmp_path)]
    )
    assert report.total == 64 * 16 + 16 * 8 + 8 * 10
    assert report.remaining == round(0.2 * report.total)  # 80% pruned in one fit
    assert [e["step"] for e in pruning.events][-1] == 8  # 8 prune steps of 1
    assert kl.pruning.masked_layers(plain) == []
    assert os.listdir(tmp_path / "logs" / "pruning")
    assert (tmp_path / "pruned.keras").exists() and (tmp_path / "plain.keras").exists()


def test_retrain_ticket_with_tweaks(tmp_path):
    from keras_lottery.config import DataConfig
    from keras_lottery.data import load_dataset
    from keras_lottery.errors import ConfigError

    example = load_example("retrain_ticket_with_tweaks.py")
    splits = load_dataset(DataConfig(name="digits", validation_size=180))
    ticket = example.own_mask_ticket(splits, density=0.2)  # a mask of your own
    ticket.save(tmp_path / "ticket.npz")
    args = ["--ticket", str(tmp_path / "ticket.npz"), "--epochs", "1"]
    results = example.main([*args, "--tweak", "swish"])  # composing: test_retraining
    assert list(results) == ["vanilla", "swish"]
    for arm in results.values():  # the tweaks leave the ticket's mask as it was
        assert arm["remaining"] == pytest.approx(1 - ticket.sparsity)
        assert 0.1 < arm["accuracy"] <= 1  # above chance on 10 digits
    with pytest.raises(ConfigError, match="'extra_skips', which does not fit"):
        example.main([*args, "--tweak", "extra_skips"])  # LeNet has no blocks


@pytest.mark.slow  # ~11 s; tests/runs/test_tuning.py covers get_best_models
@tensorflow_only
def test_tune_gradual_pruning(tmp_path):
    import keras_lottery as kl

    tuner, models = load_example("tune_gradual_pruning.py").main(
        ["--epochs", "2", "--limit", "160", "--tuner-dir", str(tmp_path)]
    )
    kept = sorted(kl.pruning.sparsity_report(m).remaining for m in models)
    assert kept == [round(0.2 * 4736), round(0.5 * 4736)]


SCRIPTS = sorted(name for name in os.listdir(EXAMPLES) if name.endswith(".py"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_example_is_tested_and_listed(name):
    tested = ""
    for path in ("test_examples.py", os.path.join("runs", "test_tuning.py")):
        with open(os.path.join(os.path.dirname(__file__), path)) as handle:
            tested += handle.read()
    assert f'load_example("{name}")' in tested
    with open(os.path.join(EXAMPLES, "README.md")) as handle:
        listed = re.findall(r"^\| `([\w.]+\.py)` \|", handle.read(), re.MULTILINE)
    assert name in listed
    assert sorted(listed) == SCRIPTS  # and the README lists no other script


# ------------------------------------------------------------------ README.md


def _readme():
    with open(README) as handle:
        return handle.read()


def _blocks(language):
    return re.findall(rf"^```{language}\n(.*?)^```", _readme(), re.M | re.S)


def _lookup(dotted):
    """The object a dotted name starting with ``keras_lottery`` names, importing
    the longest importable module prefix; ``LookupError`` if there is none."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for i, attribute in enumerate(parts[end:], start=end):
            try:
                value = getattr(value, attribute)
            except AttributeError:
                try:  # a submodule not imported by its package
                    value = importlib.import_module(".".join(parts[: i + 1]))
                except ModuleNotFoundError:
                    raise LookupError(dotted) from None
        return value
    raise LookupError(dotted)


def _exists(dotted):
    try:
        _lookup(dotted)
    except LookupError:
        return False
    return True


def _missing_in_code(source):
    """Names of keras_lottery that ``source`` imports or reaches through
    attributes (``kl.pruning.prune_magnitude``) and that do not exist."""
    tree = ast.parse(source)  # also: the block is valid Python
    compile(tree, "<README.md>", "exec")
    bound, missing = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "keras_lottery":
                    continue
                if not _exists(alias.name):
                    missing.append(alias.name)
                elif alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    bound["keras_lottery"] = "keras_lottery"
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] != "keras_lottery":
                continue
            for alias in node.names:
                dotted = f"{node.module}.{alias.name}"
                if _exists(dotted):
                    bound[alias.asname or alias.name] = dotted
                else:
                    missing.append(f"from {node.module} import {alias.name}")
    for node in ast.walk(tree):
        chain = []
        while isinstance(node, ast.Attribute):
            chain.insert(0, node.attr)
            node = node.value
        if chain and isinstance(node, ast.Name) and node.id in bound:
            dotted = ".".join([bound[node.id], *chain])
            if not _exists(dotted):
                missing.append(".".join([node.id, *chain]))
    return missing


def test_readme_python_blocks_compile_and_use_real_names():
    blocks = _blocks("python")
    assert len(blocks) >= 3
    missing = {}
    for index, source in enumerate(blocks):
        names = _missing_in_code(source)
        if names:
            missing[f"block {index + 1}: {source.splitlines()[0]}"] = names
    assert not missing, (
        f"README.md python blocks use names that do not exist: {missing}"
    )


# `keras_lottery.x` followed by " -> " (maybe after "/ `y`") is an old name in a
# note on what moved: not a claim about today's package.
_OLD_NAME = re.compile(r"`?(?:\s*/\s*`[^`]*`)*\s*->")


def _prose():
    return re.sub(r"^```.*?^```", "", _readme(), flags=re.M | re.S)


def test_readme_keras_lottery_names_exist():
    text = _prose()
    names = []
    for match in re.finditer(r"`(keras_lottery(?:\.\w+)+)", text):
        if not _OLD_NAME.match(text, match.end()):
            names.append(match.group(1))
    # Table rows such as "`keras_lottery.config` / `recipes` / `optimizers`".
    for row in re.findall(r"^\| `keras_lottery\.[\w.]+` ((?:/ `\w+` )+)\|", text, re.M):
        names += [f"keras_lottery.{name}" for name in re.findall(r"`(\w+)`", row)]
    assert len(names) >= 10
    missing = sorted({name for name in names if not _exists(name)})
    assert not missing, f"README.md names that do not exist: {missing}"


def _ours(value):
    name = (
        value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", "")
    )
    return isinstance(name, str) and name.split(".")[0] == "keras_lottery"


def _members(module):
    """What a README table row may list for ``module``: its attributes, those
    of its submodules and of the package's classes there, parameter names of
    the package's callables there, and the registered controls."""
    found = set(dir(module)) | set(controls.names())
    modules = [module] + [
        value
        for value in vars(module).values()
        if inspect.ismodule(value) and _ours(value)
    ]
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        found.add(info.name)
        modules.append(importlib.import_module(f"{module.__name__}.{info.name}"))
    for mod in modules:
        found |= set(dir(mod))
        for value in list(vars(mod).values()):
            if not (callable(value) and _ours(value)):
                continue
            functions = [value]
            if inspect.isclass(value):
                found |= set(dir(value))
                functions += [
                    getattr(value, name)
                    for name, item in vars(value).items()
                    if isinstance(item, (classmethod, staticmethod))
                    or inspect.isfunction(item)
                ]
            for function in functions:
                try:
                    found |= set(inspect.signature(function).parameters)
                except (TypeError, ValueError):
                    pass
    return found


def test_readme_api_table_lists_what_its_modules_hold():
    rows = re.findall(r"^\| (`keras_lottery\.[^|]*)\| (.*) \|$", _prose(), re.M)
    assert len(rows) >= 10
    missing = {}
    for modules_cell, what in rows:
        first, *siblings = re.findall(r"`([\w.]+)", modules_cell)
        if not _exists(first):
            continue  # test_readme_keras_lottery_names_exist names it
        modules = [first] + [f"keras_lottery.{name}" for name in siblings]
        members = set()
        for name in modules:
            if _exists(name):
                members |= _members(_lookup(name))
        listed = [re.sub(r"\(.*", "", item) for item in re.findall(r"`([^`]+)`", what)]
        absent = []
        for item in listed:
            if re.fullmatch(r"\w+", item):
                ok = item in members
            elif re.fullmatch(r"\w+(\.\w+)+", item):  # `methods.registry`
                head = getattr(_lookup(first), item.split(".")[0], None)
                if not (_exists(f"keras_lottery.{item.split('.')[0]}") or _ours(head)):
                    continue  # not the package's: `tf.data`
                ok = _exists(f"keras_lottery.{item}") or _exists(f"{first}.{item}")
            else:
                continue  # prose in backticks: `method: imp`, `stability.*`
            if not ok:
                absent.append(item)
        if absent:
            missing[first] = absent
    assert not missing, f"README.md API table names that do not exist: {missing}"


def test_readme_all_list_is_the_package_all():
    import keras_lottery

    sentence = re.search(r"\(its `__all__`\):(.*?)\.\s", _prose(), re.S)
    if sentence is None:
        pytest.skip("README.md does not list keras_lottery.__all__")
    listed = re.findall(r"`(\w+)`", sentence.group(1))
    assert listed and not set(listed) - set(keras_lottery.__all__)


def _commands():
    """Every ``keras-lottery ...`` command line of README.md's bash blocks,
    continuation lines joined and comments dropped."""
    commands = []
    for block in _blocks("bash"):
        joined = re.sub(r"\\\n", " ", block)
        for line in joined.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["keras-lottery"]:
                commands.append(words[1:])
    return commands


def test_readme_cli_commands_parse():
    commands = _commands()
    assert len(commands) >= 8
    parser = cli.build_parser()
    bad = []
    for words in commands:
        try:
            args = parser.parse_args(words)
        except SystemExit:
            bad.append(" ".join(words))
            continue
        assert args.command in cli.COMMANDS
    assert not bad, f"README.md commands keras-lottery rejects: {bad}"
    verbs = set(re.findall(r"`keras-lottery ([\w-]+)", _prose()))
    assert verbs <= set(cli.COMMANDS), verbs - set(cli.COMMANDS)
