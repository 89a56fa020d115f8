"""scripts/plot-metrics turns dat-train metrics into a PNG and rejects a broken file."""
import subprocess
import sys
from pathlib import Path

import pytest

PLOT = Path(__file__).resolve().parents[2] / "scripts" / "plot-metrics"
pytest.importorskip("matplotlib")


def plot(tmp_path, text):
    m = tmp_path / "run.metrics.jsonl"
    m.write_text(text)
    out = tmp_path / "curves.png"
    p = subprocess.run([sys.executable, str(PLOT), str(m), "-o", str(out)], capture_output=True,
                       text=True, timeout=120)
    return p, out


def test_png_of_loss_ta_ra(tmp_path):
    p, out = plot(tmp_path, '{"epoch":1,"loss":1.5,"ta":0.5,"ra":0.3,"val_ra":0.31}\n'
                            '{"epoch":2,"loss":1.1}\n{"epoch":3,"loss":0.9,"ta":0.6,"ra":0.4}\n')
    assert p.returncode == 0, p.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_broken_line_is_reported(tmp_path):
    p, out = plot(tmp_path, '{"epoch":1,"loss":1.5}\n{"epoch":2,\n')
    assert p.returncode != 0 and "run.metrics.jsonl:2" in p.stderr, p.stderr
    assert not out.exists()
