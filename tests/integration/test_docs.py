"""The README's source map stays true to the tree.

Every file under src/ (sub-folders included) and db/ is named in the
"Source map" table, by its path or by a glob the table uses (`db/*.sql`),
and every path the table names exists. Nothing is built or started: this
reads the checkout only.
"""
import fnmatch
import re

from conftest import REPO

README = REPO / "README.md"
# Named in the map but made by `make`, never committed.
GENERATED = {"generated/"}


def source_map():
    """The paths of the map's first column, in the order of the table."""
    text = README.read_text(encoding="utf-8")
    m = re.search(r"^## Source map\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, "README.md has no '## Source map' section"
    paths = []
    for line in m.group(1).splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        first = line.split("|")[1]
        paths += re.findall(r"`([^`]+)`", first)
    assert paths, "the source map names no path"
    return paths


def covered(path, named):
    """Whether `path` (relative, with '/') is one of the map's paths or
    matches one of its globs, whose '*' never crosses a '/'."""
    for n in named:
        if "*" in n or "?" in n:
            if path.count("/") == n.count("/") and fnmatch.fnmatchcase(path, n):
                return True
        elif path == n:
            return True
    return False


def test_the_source_map_names_only_paths_that_exist():
    missing = []
    for n in source_map():
        if n in GENERATED:
            continue
        if "*" in n or "?" in n:
            if not list(REPO.glob(n)):
                missing.append(n)
        elif not (REPO / n).exists() or (n.endswith("/") and not (REPO / n).is_dir()):
            missing.append(n)
    assert not missing, f"the README's source map names paths that do not exist: {missing}"


def test_every_file_under_src_and_db_is_in_the_source_map():
    named = source_map()
    files = sorted(str(p.relative_to(REPO)) for d in ("src", "db")
                   for p in (REPO / d).rglob("*") if p.is_file())
    assert files, "no file found under src/ and db/"
    absent = [f for f in files if not covered(f, named)]
    assert not absent, f"files missing from the README's source map: {absent}"


def test_the_source_map_names_each_path_once():
    named = source_map()
    twice = sorted({n for n in named if named.count(n) > 1})
    assert not twice, f"named more than once in the source map: {twice}"
