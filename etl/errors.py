"""The one exception type that means "the user's input is wrong"."""


class UserError(ValueError):
    """Bad input. Command-line entry points print the message on one line and exit 2.

    Subclasses ValueError so that it survives a round trip through Dask workers
    and still reads as a data problem to library callers.
    """
