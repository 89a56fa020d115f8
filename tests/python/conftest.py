"""Makes bindings/python importable and points it at the build under test."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bindings" / "python"))
os.environ.setdefault("LIBDAT_BUILD", str(ROOT / "build"))
os.environ.setdefault("LIBDAT_LIBRARY", str(Path(os.environ["LIBDAT_BUILD"]) / "libdat.so"))
