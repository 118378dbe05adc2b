import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_library_does_not_import_dagster():
    mods = sorted(p.stem for p in (ROOT / "deploysim").glob("*.py") if p.stem != "__init__")
    code = "import sys\n" + "".join(f"import deploysim.{m}\n" for m in mods) + "print(sorted(m for m in sys.modules if m.startswith('dagster')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert len(mods) >= 10
