"""The exports format: naming, codecs, manifest constants, reader and validator.

Knows nothing of AnnData or widgets.
"""
