"""The README documents every setting, and CI runs the README's test command."""

from pathlib import Path

from streams.worker.settings import settings_table

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [env for _, env, _, _ in settings_table() if f"| `{env}` |" not in readme]
    assert not missing, f"README lacks settings: {missing}"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = ".venv/bin/python -m pytest"
    assert command in readme
    assert command in ci
