"""The error kinds rotator raises, each with its exit code (SPEC "Exit codes").

The CLI maps these to exit codes in exactly one place (cli.main); nothing else in
the package calls sys.exit.
"""

from __future__ import annotations


class RotatorError(Exception):
    """Base: a one-line message for stderr, prefixed by `prefix`, exit with `exit_code`."""

    exit_code = 1
    prefix = "error"

    def __init__(self, message: str, *, resource: str | None = None, rule: str | None = None):
        super().__init__(message)
        self.message = message
        self.resource = resource
        self.rule = rule

    def line(self) -> str:
        # One line, always: embedded newlines would break scripts that read stderr.
        text = " ".join(self.message.split("\n"))
        if self.rule and not all(r.strip() in text for r in self.rule.split(",")):
            text += f" ({self.rule})"
        return f"{self.prefix}: {text}"

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.prefix,
            "exit_code": self.exit_code,
            "message": self.message,
            "resource": self.resource,
            "rule": self.rule,
        }


class Failure(RotatorError):
    """A failure while running: an API error after retries, or a bug."""

    exit_code = 1


class BadInput(RotatorError):
    """Usage, malformed names, bad world/playbook/plan files, missing --yes."""

    exit_code = 2


class Refused(RotatorError):
    """A guard refused a step that would make data unreadable."""

    exit_code = 3
    prefix = "refused"


class Stale(RotatorError):
    """The world changed since `plan` in a way that invalidates a step."""

    exit_code = 4
    prefix = "stale"


class Waiting(RotatorError):
    """A wait step is not satisfied yet; run apply again later or pass --wait."""

    exit_code = 75
    prefix = "waiting"


class Interrupted(RotatorError):
    """SIGINT or SIGTERM stopped an apply: calls in flight ended and were journaled;
    the same apply resumes. Exit 128 + the signal's number (130, 143), as shells do."""

    def __init__(self, message: str, *, signal_number: int, resource: str | None = None):
        super().__init__(message, resource=resource)
        self.exit_code = 128 + signal_number
