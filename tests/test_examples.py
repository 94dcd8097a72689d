"""Every example in examples/ runs in its fast form (tiny random model, few steps)."""

import importlib
import sys

import pytest
from conftest import ROOT

EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.py") if p.stem != "common")


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_fast(name, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    module = importlib.import_module(name)
    module.main(["--fast", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert out.strip(), name
    sys.modules.pop(name, None)


def test_every_example_is_listed_in_its_readme():
    readme = (ROOT / "examples" / "README.md").read_text(encoding="utf-8")
    assert all(f"{name}.py" in readme for name in EXAMPLES)
