"""The marketing policy file (TOML): which actions fire on which propensities, and the
control group that measures their uplift.

``load_policy(path)`` reads and validates the file; every problem is reported with its line
(``PolicyError``). The parsed policy is frozen (``rules.py``); ``policy_hash`` identifies the
exact file bytes and is stamped on every action record, so a decision can be traced to the
policy that made it.
"""

import hashlib
import re
import tomllib
from pathlib import Path

from streams.worker.actions.exceptions import PolicyError
from streams.worker.actions.policy_checks import check_policy
from streams.worker.actions.policy_lines import key_lines
from streams.worker.actions.rules import ActionRule, Policy

__all__ = ["ActionRule", "Policy", "PolicyError", "load_policy", "parse_policy", "policy_hash"]

POLICY_HASH_HEX = 12
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)")
_TOML_END = re.compile(r"\s*\(at end of document\)")


def policy_hash(raw: bytes) -> str:
    """The first hex digits of the SHA-256 of the file's bytes."""
    return hashlib.sha256(raw).hexdigest()[:POLICY_HASH_HEX]


def load_policy(path: str | Path) -> Policy:
    """Read, parse and validate the policy file at ``path``; PolicyError lists every problem."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError(f"{name}:1: cannot read the policy file: {exc.strerror}") from None
    return parse_policy(raw, name)


def parse_policy(raw: bytes, name: str = "<policy>") -> Policy:
    """The policy in ``raw`` (the file's bytes); ``name`` prefixes error messages."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        line = raw[: raw.decode("utf-8", "replace").find("\ufffd")].count(b"\n") + 1
        raise PolicyError(f"{name}:{line}: not UTF-8 text") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(_syntax_problem(name, str(exc), text)) from None
    return check_policy(document, key_lines(text), name, policy_hash(raw))


def _syntax_problem(name: str, message: str, text: str) -> str:
    """tomllib's message with its position moved to the front, ``<file>:<line>: ...``."""
    position = _TOML_POSITION.search(message)
    line = int(position.group(1)) if position else len(text.splitlines()) or 1
    detail = _TOML_END.sub("", _TOML_POSITION.sub("", message))
    return f"{name}:{line}: TOML syntax error: {detail}"
