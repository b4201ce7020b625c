"""Jupyter widgets (anywidget): the viewer and the export wizard."""
