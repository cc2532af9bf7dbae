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
