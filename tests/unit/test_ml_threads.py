"""`--threads auto`: one thread for the bundled small models; big batches get the idle cores."""

from __future__ import annotations

import argparse

import pytest
import torch

from tbotd.cli import build_parser
from tbotd.commands import threads_arg
from tbotd.features import FEATURE_NAMES
from tbotd.ml.device import PARALLEL_WORK, batch_work, set_threads, training_threads
from tbotd.ml.trainer import FitConfig


def test_the_bundled_models_train_on_one_thread_however_idle_the_box() -> None:
    """The default model shape is below the work that pays for a second thread: auto is 1."""
    fit = FitConfig()
    work = batch_work(len(FEATURE_NAMES), fit.hidden, 3, fit.batch_size)
    assert work < PARALLEL_WORK
    assert training_threads(work, cpus=16, load=0.0) == 1
    assert training_threads(work, cpus=2, load=1.7) == 1


def test_big_batches_get_the_cores_the_load_leaves_idle() -> None:
    """A large model takes the idle cores, and falls back to 1 when others hold them all."""
    big = batch_work(len(FEATURE_NAMES), (1024, 1024), 3, 4096)
    assert big >= PARALLEL_WORK
    assert training_threads(big, cpus=8, load=0.0) == 8
    assert training_threads(big, cpus=8, load=2.3) == 5
    assert training_threads(big, cpus=2, load=1.2) == 1
    assert training_threads(big, cpus=2, load=5.0) == 1


def test_threads_option_takes_auto_or_a_positive_count() -> None:
    """`--threads auto` is the default of train and demo; a count is kept; 0 and words refused."""
    parser = build_parser()
    assert parser.parse_args(["train", "--data", "c.csv", "--out", "m"]).threads is None
    assert parser.parse_args(["demo"]).threads is None
    assert (
        parser.parse_args(["train", "--data", "c.csv", "--out", "m", "--threads", "3"]).threads == 3
    )
    assert threads_arg("auto") is None
    for bad in ("0", "two"):
        with pytest.raises(argparse.ArgumentTypeError):
            threads_arg(bad)


def test_set_threads_caps_intra_op_threads_and_keeps_one_inter_op_thread() -> None:
    """After set_threads(n), torch runs ops on n threads and its inter-op pool on one."""
    before = torch.get_num_threads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
        assert torch.get_num_interop_threads() == 1
    finally:
        torch.set_num_threads(before)
