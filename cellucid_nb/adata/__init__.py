"""The AnnData side: look at an AnnData, plan an export, size it, export it.

Modules (each named after what it does, never after a public function, so that
importing a module cannot shadow ``cellucid_nb.adata.inspection`` or ``cellucid_nb.export``):

- ``inspection``: ``inspect(adata) -> DatasetSummary``
- ``plan``: ``ExportPlan``
- ``gene_choice``: which genes a plan exports (list, HVG, top-N, all, none)
- ``estimation`` (+ ``estimation_sampling``): ``estimate(adata, plan) -> SizeEstimate``
- ``exporting``: ``export(adata, plan, out_dir)``

This layer imports ``format`` and ``exporter``, never widgets, ``serve`` or the CLI.
"""
