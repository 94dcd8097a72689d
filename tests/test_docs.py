"""The docs: generated pages current, the README short and its links alive, every page in the site's
nav."""

import importlib.util
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_pages_are_current():
    gen = _gen_docs()
    stale = gen.stale(gen.render_all())
    assert not stale, (f"{', '.join(stale)} out of date (the config, the CLI, the TRL tables or "
                       f"bench/results changed): run `{gen.COMMAND}` and commit the pages")


def test_every_config_key_has_a_row():
    from chattune.config import LoraSettings, TrainConfig

    page = (ROOT / "docs" / "reference" / "config.md").read_text(encoding="utf-8")
    for key in [*TrainConfig.user_keys(), *(f"lora.{k}" for k in LoraSettings.model_fields)]:
        assert f"| `{key}` |" in page, key


def test_readme_is_a_front_page_whose_links_work():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 15_000
    assert "make demo" in readme and "make test" in readme
    links = [t for t in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme) if "://" not in t]
    assert any(t.startswith("docs/") for t in links)
    missing = [t for t in links if not (ROOT / t).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"


def _nav_files(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [f for v in node.values() for f in _nav_files(v)]
    return [f for item in node for f in _nav_files(item)]


def test_every_docs_page_is_in_the_nav():
    # mkdocs.yml's python tags (!!python/name) are not used: a plain YAML load reads it
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = _nav_files(config["nav"])
    pages = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(nav) == pages, ("in docs/ but not in mkdocs.yml's nav: "
                                  f"{sorted(set(pages) - set(nav))}; in the nav but not in docs/: "
                                  f"{sorted(set(nav) - set(pages))}")
