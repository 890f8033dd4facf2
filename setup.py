"""Builds the optional C line filter; everything else about the package is in pyproject.toml.

`optional=True`: without a C compiler or Python's headers the install goes on without
ci_gate.trace._scan, and the parser uses its pure-Python path (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "ci_gate.trace._scan",
            ["ci_gate/trace/_scan.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
        )
    ]
)
