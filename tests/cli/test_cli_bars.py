"""`quantflow bars synth`: the same seed writes the same bars, which the engine reads back."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from quantflow_async.backtest import read_bars
from quantflow_async.cli.app import main


def test_synth_writes_bars_the_engine_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "btc.csv"
    assert main(["bars", "synth", "-o", str(target), "--count", "50", "--interval", "1h"]) == 0
    bars = read_bars(target)
    assert len(bars) == 50
    assert int(bars.times[1] - bars.times[0]) == 3_600_000_000
    assert "wrote 50 bars" in capsys.readouterr().out


def test_the_same_seed_writes_the_same_file(tmp_path: Path) -> None:
    for name in ("a.csv", "b.csv"):
        assert main(["bars", "synth", "-o", str(tmp_path / name), "--seed", "9"]) == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_a_missing_folder_is_one_line_and_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bars", "synth", "-o", str(tmp_path / "no" / "b.csv")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "choose a folder that exists" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_a_new_file_gets_the_mode_a_shell_gives_and_an_old_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    umask = os.umask(0o022)
    try:
        new, old = tmp_path / "new.csv", tmp_path / "old.csv"
        old.write_text("")
        old.chmod(0o640)
        for target in (new, old):
            assert main(["bars", "synth", "-o", str(target), "--count", "5"]) == 0
        assert stat.S_IMODE(new.stat().st_mode) == 0o644
        assert stat.S_IMODE(old.stat().st_mode) == 0o640
    finally:
        os.umask(umask)


def test_a_drift_of_zero_keeps_a_long_walk_near_its_first_price(tmp_path: Path) -> None:
    # The default drift (0.0002 a bar) grows prices by e**20 over 100,000 bars.
    target = tmp_path / "long.csv"
    assert main(["bars", "synth", "-o", str(target), "--count", "100000", "--drift", "0"]) == 0
    closes = read_bars(target).close
    assert 1 < closes.max() < 10_000


@pytest.mark.parametrize("drift", ["nan", "inf", "0.5", "-1"])
def test_a_drift_out_of_range_is_one_line_and_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], drift: str
) -> None:
    assert main(["bars", "synth", "-o", str(tmp_path / "b.csv"), "--drift", drift]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "drift: must be a number from -0.1 to 0.1" in err[0]
    assert list(tmp_path.iterdir()) == []
