"""The .funcignore matcher itself, and what the repo's .funcignore keeps (fast, no network)."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.funcignore import copy_payload, ignored, parse

ROOT = Path(__file__).resolve().parents[2]


def test_matcher_semantics() -> None:
    rules = parse("# c\n\ntests\n*.pyc\n/top.txt\ndocs/*.md\nbuild/\n!keep.pyc\n")
    assert ignored(rules, "tests", is_dir=True)
    assert ignored(rules, "tests/unit/test_x.py")
    assert ignored(rules, "pkg/tests/x.py")  # no slash: any component
    assert not ignored(rules, "tests_helper.py")
    assert ignored(rules, "a/b/c.pyc")
    assert not ignored(rules, "a/keep.pyc")  # re-included
    assert ignored(rules, "top.txt")
    assert not ignored(rules, "sub/top.txt")  # anchored
    assert ignored(rules, "docs/a.md")
    assert not ignored(rules, "x/docs/a.md")
    assert ignored(rules, "build/out.bin")
    assert not ignored(rules, "build")  # a file named build: dir-only rule


def test_repo_payload_is_only_what_runs(tmp_path: Path) -> None:
    kept = copy_payload(ROOT, tmp_path)
    tops = {rel.split("/")[0] for rel in kept}
    app = {"function_app.py", "sample_handlers.py", "host.json", "requirements.txt", "jobs_api",
           "jobs_core"}
    assert app <= tops
    for gone in ("tests", "examples", "infra", "bench", "bench-results", "devhost", "scripts",
                 "jobs_client", ".ci", ".venv", ".azurite", ".azurite-data", ".devhost-data",
                 ".git", "local.settings.json", "local.settings.sample.json", "azure.yaml",
                 "requirements-dev.txt"):
        assert gone not in tops, gone
    assert not [rel for rel in kept if rel.endswith(".pyc") or "__pycache__" in rel]
    # nothing but the app, its config and docs
    assert tops <= app | {".funcignore", "README.md"}, tops
