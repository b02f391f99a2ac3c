"""Every command's errors: one line naming the flag and value, no traceback unless --debug."""

from __future__ import annotations

import pytest

from actiondistill.cli import main


def test_synth_out_onto_a_file_is_named(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("x")
    assert main(["synth", "--out", str(target), "--videos", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --out {target}: is a file; expected a folder (a new one, or one to resume)\n"


def test_json_onto_a_folder_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    from actiondistill.cli import synth

    monkeypatch.setattr(synth, "run", lambda args: pytest.fail("the command ran before --json was checked"))
    assert main(["synth", "--out", str(tmp_path / "w"), "--videos", "2", "--json", str(tmp_path)]) == 2
    assert f"--json {tmp_path}: is a folder; expected a file path" in capsys.readouterr().err


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    from actiondistill.cli import synth

    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(synth, "run", broken)
    assert main(["synth", "--out", str(tmp_path / "w"), "--videos", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ZeroDivisionError: division by zero" in err and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        main(["synth", "--out", str(tmp_path / "w"), "--videos", "2", "--debug"])


def test_ctrl_c_outside_a_stream_exits_130_in_one_line(tmp_path, capsys, monkeypatch):
    from actiondistill.cli import synth

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "run", interrupted)
    assert main(["synth", "--out", str(tmp_path / "w"), "--videos", "2"]) == 130
    assert capsys.readouterr().err == "error: interrupted (Ctrl-C)\n"
