"""The monitor repeats the protocol's constants (it imports nothing from dockyard): keep them equal."""

from __future__ import annotations

import importlib.util
import os

from dockyard.monitor import protocol


def _monitor_module():
    path = os.path.join(os.path.dirname(protocol.__file__), "monitor.py")
    spec = importlib.util.spec_from_file_location("dockyard_monitor_standalone", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_frame_constants_match():
    m = _monitor_module()
    for name in ("F_STDIN", "F_STDIN_EOF", "F_RESIZE", "F_SIGNAL", "F_CLAIM_CLEANUP", "F_STDOUT", "F_STDERR",
                 "F_EXIT", "HEADER"):
        assert getattr(m, name) == getattr(protocol, name), name


def test_config_round_trip(tmp_path):
    m = _monitor_module()
    items = [("id", "abc"), ("health", "CMD-SHELL"), ("health", "echo 'a\tb'\nnext \\ line ü"), ("tty", True)]
    path = tmp_path / "monitor.conf"
    path.write_text(protocol.encode_config(items))
    cfg = m.Config(m.read_config(str(path)))
    assert cfg.get("id") == "abc"
    assert cfg.list("health") == ["CMD-SHELL", "echo 'a\tb'\nnext \\ line ü"]
    assert cfg.int("tty") == 1


def test_json_log_line_escaping():
    import json

    m = _monitor_module()
    raw = b'quote " backslash \\ tab \t ctl \x01 nl\n'
    assert json.loads(m.json_str(raw)) == raw.decode()
