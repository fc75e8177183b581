"""Errors and warnings that talk to a person.

Every problem with user input raises a subclass of `BeamcatError` whose message
names the file (and offset, row or key) and what was expected.
"""


class BeamcatError(Exception):
    """Base class of every error beamcat raises about user input."""


class SourceNotFoundError(BeamcatError, FileNotFoundError):
    """A file, folder, glob or key that should exist does not."""


class FormatError(BeamcatError, ValueError):
    """A file's content is not what its format promises (truncated, garbage, wrong type)."""


class OptionError(BeamcatError, ValueError):
    """An option passed by the caller is invalid for this source or analysis."""


class CatalogError(BeamcatError):
    """A catalog file or entry is malformed or unknown."""


class UntrustedCatalogError(CatalogError):
    """A catalog uses Intake templates that can run code and was not trusted."""


class BeamcatWarning(UserWarning):
    """Something is suspicious but the result is still usable."""
