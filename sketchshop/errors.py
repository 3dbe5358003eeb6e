"""Errors a user can cause. The CLI turns them into one line and exit code 2; the API into a 4xx."""


class UserError(Exception):
    """Bad input from the user: a file, a label, an option. The message names the culprit."""

    status = 400
    code = "bad_request"


class ImageError(UserError):
    code = "bad_image"


class TooLarge(UserError):
    status = 413
    code = "too_large"
