"""Property-based fuzzing (hypothesis) of what users hand to mlff: extxyz files and training
configurations. For any malformed input the outcome is an mlff error with a message (or a
valid result), never another exception."""

from __future__ import annotations

import math

import numpy as np
import yaml
from ase.build import molecule
from hypothesis import HealthCheck, given, settings, strategies as st

from mlff.data.io import read_dataset, write_dataset
from mlff.errors import ConfigError, DataError
from mlff.train.config import TrainConfig

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def valid_extxyz() -> str:
    import tempfile
    from pathlib import Path

    frames = []
    for k in range(3):
        atoms = molecule("CH4")
        atoms.rattle(0.01, seed=k)
        atoms.info["energy"] = -1.0 - k
        atoms.arrays["forces"] = np.full((5, 3), 0.1 * k)
        frames.append(atoms)
    with tempfile.TemporaryDirectory() as tmp:
        return write_dataset(Path(tmp) / "x.extxyz", frames).read_text()


VALID = valid_extxyz()


@st.composite
def mutated_extxyz(draw) -> str:
    """A valid file with random damage: truncation, replaced characters, dropped, doubled
    or inserted lines, or text that is not extxyz at all."""
    text = VALID
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "replace", "drop", "double", "insert", "random"]))
        lines = text.splitlines()
        if op == "truncate":
            text = text[:draw(st.integers(0, len(text)))]
        elif op == "replace" and text:
            k = draw(st.integers(0, len(text) - 1))
            text = text[:k] + draw(st.sampled_from(list("x0-.e=\"' \n\t,;:9") + ["nan", "inf", "1e999"])) + text[k + 1:]
        elif op == "drop" and lines:
            del lines[draw(st.integers(0, len(lines) - 1))]
            text = "\n".join(lines)
        elif op == "double" and lines:
            k = draw(st.integers(0, len(lines) - 1))
            lines.insert(k, lines[k])
            text = "\n".join(lines)
        elif op == "insert":
            k = draw(st.integers(0, len(lines)))
            lines.insert(k, draw(st.text(max_size=40)))
            text = "\n".join(lines)
        elif op == "random":
            text = draw(st.text(max_size=300))
    return text


@FUZZ
@given(text=mutated_extxyz())
def test_extxyz_reader_never_raises_anything_but_data_error(text, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "data.extxyz"
    path.write_text(text)
    try:
        frames = read_dataset(path)
    except DataError as exc:
        assert str(path) in str(exc)
        return
    for atoms in frames:  # what is accepted is usable: finite labels of the right shape
        assert math.isfinite(atoms.info["energy"])
        assert atoms.arrays["forces"].shape == (len(atoms), 3) and np.isfinite(atoms.arrays["forces"]).all()


ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                      st.text(max_size=10), st.lists(st.integers(), max_size=3),
                      st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
OPTION = st.sampled_from(sorted(TrainConfig.__dataclass_fields__) + ["learning_rate", "batchsize"])


@FUZZ
@given(options=st.dictionaries(OPTION, ANY_VALUE, max_size=5))
def test_training_config_never_raises_anything_but_config_error(options, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "cfg.yaml"
    path.write_text(yaml.safe_dump(options))
    try:
        config = TrainConfig.from_sources(path, {})
    except ConfigError as exc:
        assert str(exc)
        return
    # an accepted configuration is usable as is
    assert config.batch_size >= 1 and math.isfinite(config.lr) and config.lr > 0 and config.r_max > 0
