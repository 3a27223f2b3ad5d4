"""The one error type the CLI turns into a one-line message and a non-zero exit."""


class UserError(Exception):
    """A mistake the user can fix (bad input, missing service); printed without a traceback."""
