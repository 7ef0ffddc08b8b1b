"""The marketing policy file: the example loads, and every wrong line is reported with it."""

from pathlib import Path

import pytest

from schemas.units import HOUR_MS, MINUTE_MS
from streams.worker.actions.local_time import parse_quiet_hours
from streams.worker.actions.policy import PolicyError, load_policy, parse_policy, policy_hash

REPO_ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
[policy]
salt = "s1"
control_share = 0.1
timezone = "Europe/Berlin"
daily_cap = 3

[actions.b_nudge]
priority = 5
trigger = "event"
head = "purchase"
min_score = 0.5

[actions.a_reminder]
priority = 5
trigger = "inactivity"
head = "cart_abandon"
inactive_minutes = 30
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text.encode(), "p.toml")
    return str(caught.value).splitlines()


def test_the_example_policy_loads() -> None:
    path = REPO_ROOT / "deploy" / "policy.toml"
    policy = load_policy(path)
    assert policy.policy_hash == policy_hash(path.read_bytes())
    assert len(policy.policy_hash) == 12
    assert [r.name for r in policy.actions] == [
        "cart_reminder",
        "checkout_nudge",
        "browse_discount",
    ]
    reminder = policy.actions[0]
    assert reminder.inactive_ms == 30 * MINUTE_MS and reminder.cooldown_ms == 20 * HOUR_MS
    assert policy.uplift_horizon_ms == 24 * HOUR_MS and str(policy.timezone) == "Europe/Berlin"


def test_defaults_and_order_ties_broken_by_name() -> None:
    policy = parse_policy(GOOD.encode())
    assert [r.name for r in policy.actions] == ["a_reminder", "b_nudge"]
    nudge = policy.rule("b_nudge")
    assert nudge is not None
    assert (nudge.max_score, nudge.event_types, nudge.cart, nudge.cooldown_ms) == (
        None,
        None,
        "any",
        0,
    )
    assert policy.inactivity_rules == (policy.actions[0],)


def test_the_hash_changes_with_the_bytes() -> None:
    assert (
        parse_policy(GOOD.encode()).policy_hash != parse_policy((GOOD + "\n").encode()).policy_hash
    )


def test_a_syntax_error_keeps_tomllibs_line() -> None:
    (line,) = problems(GOOD.replace("min_score = 0.5", "min_score = = 0.5"))
    assert line.startswith("p.toml:11: TOML syntax error")


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ("control_share = 0.1", "control_share = 1.0", 3, "control_share"),
        ("control_share = 0.1", 'control_share = "lots"', 3, "must be a number"),
        ('timezone = "Europe/Berlin"', 'timezone = "Mars/Olympus"', 4, "time zone"),
        ("daily_cap = 3", "daily_cap = 2.5", 5, "integer"),
        ("daily_cap = 3", "daily_cap = true", 5, "integer"),
        ("min_score = 0.5", "min_score = 1.5", 11, "out of range"),
        ("min_score = 0.5", "min_scor = 0.5", 11, "unknown key 'min_scor'"),
        ('head = "purchase"', 'head = "revenue"', 10, "not one of"),
        ("min_score = 0.5", 'event_types = ["view", "checkout"]', 11, "checkout"),
        ("min_score = 0.5", 'quiet_hours = "22:00-8:00"', 11, "HH:MM-HH:MM"),
        ("min_score = 0.5", 'quiet_hours = "24:00-08:00"', 11, "HH:MM-HH:MM"),
        ("min_score = 0.5", 'quiet_hours_mode = "hold"', 11, "without quiet_hours"),
        ("min_score = 0.5", "max_score = 0.4\nmin_score = 0.5", 11, "above min_score"),
        ("min_score = 0.5", "inactive_minutes = 5", 11, "inactivity triggers only"),
        ("inactive_minutes = 30", "cooldown_hours = 1", 15, "needs inactive_minutes"),
        ("inactive_minutes = 30", 'inactive_minutes = 30\ncart = "empty"', 18, "no score"),
        ("[actions.b_nudge]", '[actions."b nudge"]', 7, "action name"),
        ('salt = "s1"', 'salt = ""', 2, "non-empty string"),
        ('salt = "s1"', 'pepper = "s1"', 1, "required key 'salt'"),
    ],
)
def test_each_wrong_value_is_reported_on_its_line(
    old: str, new: str, line: int, words: str
) -> None:
    assert old in GOOD
    found = problems(GOOD.replace(old, new, 1))
    assert any(p.startswith(f"p.toml:{line}: ") and words in p for p in found), found


def test_all_problems_are_collected_one_per_line_in_file_order() -> None:
    text = GOOD.replace("daily_cap = 3", "daily_cap = -1").replace(
        "min_score = 0.5", "min_score = 2"
    )
    found = problems(text.replace("inactive_minutes = 30", "inactive_minutes = 0"))
    assert [p.split(":")[1] for p in found] == ["5", "11", "17"]


def test_a_policy_without_actions_is_refused() -> None:
    (line,) = problems('[policy]\nsalt = "s"\n')
    assert "no actions" in line and line.startswith("p.toml:1:")


def test_a_missing_file_and_non_utf8_bytes_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"nowhere.toml:1: cannot read"):
        load_policy(tmp_path / "nowhere.toml")
    with pytest.raises(PolicyError, match=r"p.toml:3: not UTF-8"):
        parse_policy(b'[policy]\nsalt = "a"\n# \xff\n', "p.toml")


def test_quiet_hours_may_wrap_midnight() -> None:
    assert str(parse_quiet_hours("22:00-08:00")) == "22:00-08:00"
    with pytest.raises(ValueError, match="same time"):
        parse_quiet_hours("08:00-08:00")
