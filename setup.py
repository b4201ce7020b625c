"""Build the optional C extension of the gene writer (metadata lives in pyproject.toml).

``cellucid_nb.exporter._csr_sweep`` is optional: without a C compiler the
package installs anyway and the exporter slices with scipy instead (slower,
same bytes). -ffp-contract=off keeps quantization bit-identical to numpy's.
"""

import os

from setuptools import Extension, setup

flags = ["/O2", "/fp:strict"] if os.name == "nt" else ["-O3", "-ffp-contract=off", "-fno-fast-math"]

setup(
    ext_modules=[
        Extension(
            "cellucid_nb.exporter._csr_sweep",
            sources=["cellucid_nb/exporter/_csr_sweep.c"],
            extra_compile_args=flags,
            optional=True,
        )
    ]
)
