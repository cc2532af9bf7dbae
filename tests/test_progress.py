"""Tests for bayesmf.progress: silent unless stderr is a terminal or the bar is forced."""

from __future__ import annotations

import pytest

from bayesmf.progress import ENV_VAR, progress_bar, progress_enabled, track


def test_enabled_rules(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert progress_enabled(True) is True
    assert progress_enabled(False) is False
    assert progress_enabled(None) is False  # pytest's captured stderr is not a terminal
    monkeypatch.setenv(ENV_VAR, "1")
    assert progress_enabled(None) is True
    assert progress_enabled(False) is False  # an explicit argument wins
    monkeypatch.setenv(ENV_VAR, "0")
    assert progress_enabled(True) is True
    assert progress_enabled(None) is False


def test_silent_by_default(capsys, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert list(track(range(4), "quiet")) == [0, 1, 2, 3]
    with progress_bar(10, "quiet bar") as bar:
        bar.advance(3)
        bar.update(description="still quiet")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_forced_bar_goes_to_stderr(capsys):
    items = list(track(iter("abc"), "lettering", total=3, enabled=True, transient=False))
    assert items == ["a", "b", "c"]
    with progress_bar(100, "download", enabled=True, unit="bytes", transient=False) as bar:
        bar.advance(50)
        bar.update(description="halfway")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "lettering" in captured.err and "3/3" in captured.err
    assert "halfway" in captured.err and "50/100 bytes" in captured.err


def test_track_propagates_errors_and_closes(monkeypatch):
    def boom():
        yield 1
        raise RuntimeError("inner failure")

    with pytest.raises(RuntimeError, match="inner failure"):
        list(track(boom(), "failing", enabled=True))


def test_lazy_bar_appears_only_after_its_delay(monkeypatch):
    from bayesmf.progress import LazyBar

    clock = {"t": 0.0}
    with LazyBar(10, "ALS", enabled=True, after=1.0) as bar:
        bar._clock = lambda: clock["t"]  # a fake clock: no sleeping in tests
        bar._t0 = 0.0
        bar.advance()
        clock["t"] = 0.5
        bar.advance()
        assert bar._bar is None  # a short loop draws nothing
        clock["t"] = 1.5
        bar.advance(description="ALS sweep 3")
        assert bar._bar is not None and bar.steps == 3
        bar.advance()
    assert bar._bar is None and bar.steps == 4  # closed on exit
    with LazyBar(5, enabled=False, after=0.0) as quiet:
        for _ in range(5):
            quiet.advance()
    assert quiet._bar is None and quiet.steps == 5
