"""`pip install bindings/python` with Debian's python3, then `import libdat` from
elsewhere, against the built library (named by LIBDAT_LIBRARY, or found on the
library path as an installed one would be)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pip_install_then_import(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT / "bindings" / "python", src)  # the build leaves files beside it
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--break-system-packages", "--target", str(site),
                    str(src)], check=True, cwd=tmp_path)
    assert (site / "libdat" / "py.typed").exists()
    lib = Path(os.environ["LIBDAT_LIBRARY"])
    code = "import libdat, sys; print(libdat.__file__); print(libdat.version())"
    env = {k: v for k, v in os.environ.items() if k not in ("LIBDAT_LIBRARY", "PYTHONPATH")}
    for extra in ({"LIBDAT_LIBRARY": str(lib)}, {"LD_LIBRARY_PATH": str(lib.parent)}):
        out = subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path,
                             env={**env, "PYTHONPATH": str(site), **extra},
                             capture_output=True, text=True).stdout.split()
        assert out[0].startswith(str(site)), out
        assert out[1].count(".") == 2
