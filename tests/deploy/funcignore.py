"""``.funcignore`` matching (gitignore-like), to build the payload the way Core Tools would.

Rules: blank lines and ``#`` comments are skipped; a pattern without ``/`` matches any path
component (``tests`` leaves out ``tests/`` and everything below it, ``*.pyc`` any such file); a
pattern with ``/`` inside is matched against the path from the root; a trailing ``/`` matches
folders only; ``!pattern`` re-includes. The last matching rule wins.
"""

from __future__ import annotations

import fnmatch
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rule:
    pattern: str
    negate: bool
    dir_only: bool
    anchored: bool


def parse(text: str) -> list[Rule]:
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line.removeprefix("!")
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        rules.append(Rule(line.lstrip("/"), negate, dir_only, anchored))
    return rules


def _matches(rule: Rule, parts: tuple[str, ...], is_dir: bool) -> bool:
    # the path itself, or one of its parent folders, matches the rule
    for depth in range(1, len(parts) + 1):
        prefix = parts[:depth]
        prefix_is_dir = depth < len(parts) or is_dir
        if rule.dir_only and not prefix_is_dir:
            continue
        if rule.anchored:
            if fnmatch.fnmatchcase("/".join(prefix), rule.pattern):
                return True
        elif fnmatch.fnmatchcase(prefix[-1], rule.pattern):
            return True
    return False


def ignored(rules: list[Rule], relpath: str, *, is_dir: bool = False) -> bool:
    parts = tuple(p for p in relpath.replace("\\", "/").split("/") if p)
    result = False
    for rule in rules:
        if _matches(rule, parts, is_dir):
            result = not rule.negate
    return result


def copy_payload(root: Path, dest: Path) -> list[str]:
    """Copy every file under ``root`` that ``root/.funcignore`` keeps; return their paths."""
    rules = parse((root / ".funcignore").read_text())
    kept = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir() or ignored(rules, rel):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        kept.append(rel)
    return kept
