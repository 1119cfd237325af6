"""The one error the domain raises: a rule a command broke, naming the offending field."""

from __future__ import annotations


class RuleViolation(Exception):
    """A command breaks a domain rule; the HTTP layer turns it into a 422 problem.

    ``code`` is the stable problem type (e.g. ``treatment-exceeds-accepted``) and ``field``
    the input the caller must change.
    """

    def __init__(self, code: str, field: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.field = field
        self.detail = detail
