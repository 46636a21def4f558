"""environment.yml (conda) and pyproject.toml (pip) must pin exactly the same packages."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from stlib.paths import REPO_ROOT

REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*$")


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(requirements) -> dict[str, str]:
    """['torch==2.13.0', ...] -> {'torch': '==2.13.0'}; a package listed twice is an error."""
    out: dict[str, str] = {}
    for req in requirements:
        assert isinstance(req, str), f"not a requirement string: {req!r}"
        m = REQ.match(req)
        assert m, f"cannot parse requirement {req!r}"
        name, spec = canonical(m.group(1)), m.group(3).replace(" ", "")
        assert name not in out, f"{name} listed twice"
        out[name] = spec
    return out


def pyproject_deps() -> dict[str, str]:
    data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return parse(data["project"]["dependencies"])


def conda_pip_deps() -> dict[str, str]:
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml needs exactly one `pip:` list"
    return parse(pip_lists[0])


def test_parse_helper():
    assert parse(["Foo_Bar == 1.0", "x[extra]>=2"]) == {"foo-bar": "==1.0", "x": ">=2"}
    with pytest.raises(AssertionError, match="twice"):
        parse(["a==1", "A==2"])


def test_environment_yml_mirrors_pyproject():
    pyproject, conda = pyproject_deps(), conda_pip_deps()
    assert pyproject, "pyproject.toml lists no dependencies"
    only_pp = sorted(set(pyproject) - set(conda))
    only_conda = sorted(set(conda) - set(pyproject))
    assert not only_pp and not only_conda, f"only in pyproject.toml: {only_pp}; only in environment.yml: {only_conda}"
    differ = {n: (pyproject[n], conda[n]) for n in pyproject if pyproject[n] != conda[n]}
    assert not differ, f"pins differ (pyproject.toml, environment.yml): {differ}"


@pytest.mark.parametrize("source", [pyproject_deps, conda_pip_deps], ids=["pyproject", "environment"])
def test_every_dependency_pinned_exactly(source):
    deps = source()
    loose = {n: s for n, s in deps.items() if not re.fullmatch(r"==[0-9][0-9A-Za-z.+!-]*", s)}
    assert not loose, f"not pinned with ==: {loose}"


@pytest.mark.parametrize("source", [pyproject_deps, conda_pip_deps], ids=["pyproject", "environment"])
def test_torch_pinned_to_2_13_0(source):
    assert source()["torch"] == "==2.13.0"


def test_environment_yml_python_matches_requires_python():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pythons = [d for d in env["dependencies"] if isinstance(d, str) and re.match(r"python\b", d)]
    assert pythons, "environment.yml names no python version"
    major_minor = re.search(r"(\d+)\.(\d+)", pythons[0]).groups()
    requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    lower = re.search(r">=\s*(\d+)\.(\d+)", requires).groups()
    assert tuple(map(int, major_minor)) >= tuple(map(int, lower)), (pythons[0], requires)


def test_makefile_installs_the_pinned_torch():
    makefile = (REPO_ROOT / "Makefile").read_text()
    pins = set(re.findall(r"torch==([0-9][0-9.]*)", makefile))
    assert pins <= {"2.13.0"}, f"Makefile pins torch {pins}, pyproject.toml 2.13.0"
