"""Error messages the wizard shows: what went wrong and what to change.

A failure in a background thread must never end as a silent stop: the wizard
turns the exception into one readable message with a hint for the control
that fixes it.
"""

from __future__ import annotations

__all__ = ["describe_error"]

# (substring of the lower-cased message or exception class name, hint)
_HINTS: tuple[tuple[str, str], ...] = (
    ("force=true", "Tick \u201cOverwrite an existing export\u201d or choose another output folder."),
    ("already exists", "Tick \u201cOverwrite an existing export\u201d or choose another output folder."),
    ("permission", "Choose an output folder you can write to."),
    ("no space", "Free disk space, choose another output folder, or export fewer genes / use 8-bit."),
    ("memoryerror", "Export fewer genes, or use 8-bit quantization."),
    ("collid", "Rename one of the columns named in the message (they map to the same file name), or untick one."),
    ("categories", "Untick that obs column, or set the categorical dtype to uint16."),
    ("unknown gene", "Remove the unknown gene ids from the list (they are shown in the Genes section)."),
    ("not found", "Pick another key in the section named in the message."),
    ("shape", "Pick an array with one row per cell (the section named in the message)."),
    ("embedding", "Pick at least one embedding (1D, 2D or 3D)."),
    ("compression", "Set compression to none or a level between 1 and 9."),
    ("quantiz", "Choose 8-bit, 16-bit or float32."),
)


def describe_error(exc: BaseException) -> str:
    """``"<Type>: <message>\\nWhat to change: <hint>"`` for display in the widget."""
    message = str(exc) or exc.__class__.__name__
    text = f"{exc.__class__.__name__}: {message}"
    haystack = f"{exc.__class__.__name__} {message}".lower()
    for needle, hint in _HINTS:
        if needle in haystack:
            return f"{text}\nWhat to change: {hint}"
    return f"{text}\nWhat to change: check the settings named in the message, then export again."
