"""environment.yml and pyproject.toml declare the same dependencies, with lower bounds only."""
import re
try:
    import tomllib
except ImportError:              # Python 3.10
    import tomli as tomllib

from conftest import ROOT


def _names(specs):
    return {re.split(r"[<>=!~ ]", s.strip(), maxsplit=1)[0].lower().replace("_", "-") for s in specs}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"]) + [d for deps in project["optional-dependencies"].values() for d in deps]
    text = (ROOT / "environment.yml").read_text()
    pip_section = text[text.index("- pip:") + len("- pip:"):]
    env = [l.strip()[2:] for l in pip_section.splitlines() if l.strip().startswith("- ") and "-e ." not in l]
    assert _names(env) == _names(declared)


def test_dependencies_are_lower_bounds_not_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in list(project["dependencies"]) + [d for ds in project["optional-dependencies"].values() for d in ds]:
        assert "==" not in dep, f"{dep}: use a lower bound, not an exact pin"
    assert "torch>=2.6" in project["dependencies"]
