"""Error messages the wizard shows: what went wrong, in a beginner's words, and what to click.

A failure in a background thread must never end as a silent stop: the wizard
turns the exception into ``"<what happened>\\nWhat to change: <the control
that fixes it>"``. Known problems get plain sentences (never
``PlanError: embeddings={}``); the library's own message stays only where its
details (names, sizes) are what the user needs. Messages written for Python
callers (``force=True``) are translated to the wizard's controls.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["describe_error", "in_wizard_words"]

#: The wizard's controls, as the page labels them (js/wizard/sections.js).
OVERWRITE = "\u201cOverwrite an existing export\u201d"
OUTPUT_FOLDER = "\u201cOutput folder\u201d"

_Rule = tuple[re.Pattern[str], Callable[[re.Match[str], str], str], str]


def _fixed(text: str) -> Callable[[re.Match[str], str], str]:
    return lambda match, message: text


def _keep(prefix: str = "") -> Callable[[re.Match[str], str], str]:
    return lambda match, message: prefix + message


def _rule(pattern: str, what: Callable[[re.Match[str], str], str], hint: str) -> _Rule:
    return (re.compile(pattern, re.IGNORECASE | re.DOTALL), what, hint)


# First match wins: (pattern over "<ExceptionType> <message>", what happened, what to change).
_RULES: tuple[_Rule, ...] = (
    _rule(r"embeddings=\{\}|no embedding found|embeddings=.*expected a non-empty",
          _fixed("An export needs at least one embedding (the cell positions), and none is chosen."),
          "In Embeddings, pick one, e.g. X_umap as the 2D embedding."),
    _rule(r"embeddings\[(\d)\]='([^']*)' not in obsm",
          lambda m, _: f"The {m.group(1)}D embedding {m.group(2)!r} is not in this dataset.",
          "In Embeddings, pick one of the listed embeddings."),
    _rule(r"obsm\['([^']*)'\] has shape \(([^)]*)\), expected \(([^)]*)\)",
          lambda m, _: f"{m.group(1)!r} has the wrong shape for this choice ({m.group(2)} instead of {m.group(3)}).",
          "In Embeddings, pick an embedding with as many columns as its dimension (2 for 2D)."),
    _rule(r"unknown gene id.*? not in the '([^']*)' expression source \([^)]*\): (.*?)\. Expected",
          lambda m, _: f"Some genes are not in this dataset ({m.group(1)}): {m.group(2)}. Nothing was changed.",
          "In Genes, fix the spelling (the closest names are suggested) or remove those genes."),
    _rule(r"already holds an export made with different settings \(([^)]*)\)",
          lambda m, _: f"The output folder already holds an export made with other settings ({m.group(1)}). "
                       "Nothing was written; that export is unchanged.",
          f"Tick {OVERWRITE} to replace it, or change the {OUTPUT_FOLDER}."),
    _rule(r"is not empty and holds no cellucid export",
          _fixed("The output folder holds other files (not an export); nothing was written."),
          f"Change the {OUTPUT_FOLDER} to a new or empty folder."),
    _rule(r"force=true|already exists",
          lambda m, msg: in_wizard_words(msg),
          f"Tick {OVERWRITE} or change the {OUTPUT_FOLDER}."),
    _rule(r"permission", _fixed("The output folder cannot be written (permission denied)."),
          f"Change the {OUTPUT_FOLDER} to one you can write to."),
    _rule(r"no space", _fixed("The disk is full."),
          "Free disk space, change the output folder, or export fewer genes / use 8-bit."),
    _rule(r"memoryerror", _fixed("The computer ran out of memory."),
          "Export fewer genes, or use 8-bit quantization."),
    _rule(r"collid", _keep("Two names become the same file name: "),
          "Rename one of each pair named above (they map to the same file name), or untick one."),
    _rule(r"obs_keys \[([^\]]*)\] not in obs",
          lambda m, _: f"Cell metadata column(s) {m.group(1)} are not in this dataset.",
          "In Cell metadata (obs), untick them."),
    _rule(r"categories", _keep("A cell metadata column has too many categories: "),
          "In Cell metadata (obs), untick that column, or set Category codes to uint16."),
    _rule(r"var_gene_id_column", _fixed("The chosen gene id column is not in this dataset's genes."),
          "In Genes, pick another gene id column (index is always there)."),
    _rule(r"connectivities='([^']*)' not in obsp",
          lambda m, _: f"The kNN graph {m.group(1)!r} is not in this dataset.",
          "In Graph and vector fields, pick one of the listed graphs or none."),
    _rule(r"not found|not in (obsm|obsp|obs|adata)", _keep(),
          "Pick another key in the section named above."),
    _rule(r"shape", _keep(), "Pick an array with one row per cell (the section named above)."),
    _rule(r"compression", _fixed("The compression level is not valid."),
          "In Quantization and compression, set compression to none or a level between 1 and 9."),
    _rule(r"quantiz", _fixed("The number of bits is not valid."), "In Quantization and compression, choose 8-bit, 16-bit or float32."),
)

#: Exception types whose message is meant for users; others are shown with their type (a bug).
_USER_ERRORS = ("PlanError", "ValueError", "KeyError", "TypeError", "FileExistsError", "FileNotFoundError",
                "UnknownGenesError", "NameCollisionError", "PermissionError", "OSError", "RuntimeError")


def in_wizard_words(message: str) -> str:
    """Rewrite advice for Python callers (``force=True``) in terms of the wizard's controls."""
    message = re.sub(r"(use|pass) force=True", f"tick {OVERWRITE}", message, flags=re.IGNORECASE)
    message = re.sub(r"force=True", f"{OVERWRITE} ticked", message)
    message = re.sub(r"another out_dir", "another output folder", message)
    return message


def describe_error(exc: BaseException) -> str:
    """``"<what happened>\\nWhat to change: <hint>"`` for display in the widget.

    Parameters
    ----------
    exc
        The error of a plan edit, an estimate, a gene choice or an export.
    """
    message = str(exc).strip().strip("\"'") or exc.__class__.__name__
    name = exc.__class__.__name__
    haystack = f"{name} {message}"
    for pattern, what, hint in _RULES:
        match = pattern.search(haystack)
        if match:
            return f"{in_wizard_words(what(match, message))}\nWhat to change: {hint}"
    text = in_wizard_words(message) if name in _USER_ERRORS else f"Unexpected error ({name}): {message}"
    return f"{text}\nWhat to change: check the settings named in the message, then export again."
