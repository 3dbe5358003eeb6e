"""Errors a user can cause. The CLI turns them into one line and exit code 2; the API into a 4xx."""


class UserError(Exception):
    """Bad input from the user: a file, a label, an option. The message names the culprit."""

    status = 400
    code = "bad_request"


class ImageError(UserError):
    code = "bad_image"


class BadShape(ImageError):
    """An image whose size is wrong for us (too small, a sliver): fetching it again will not change that."""


class TooLarge(UserError):
    status = 413
    code = "too_large"


def yaml_problem(e: Exception) -> str:
    """A YAML parser's error in one line: where, and what it found there (its own report runs to 8 lines)."""
    mark = getattr(e, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return where + (getattr(e, "problem", None) or str(e).splitlines()[0])
