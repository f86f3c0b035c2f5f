"""Conv3DT Studio: a node editor and a NumPy/CuPy compute core for
Input -> TimeDistributed(Conv3DTranspose) graphs with Keras 3 semantics.

One import namespace, three layers (the import direction is compute <- nodes <- app):

- :mod:`conv3dt_studio.compute` - Qt-free numerics and the executable ``Graph`` (the Python API);
- :mod:`conv3dt_studio.nodes` - Qt-free node catalogue, graph documents, validation, running;
- :mod:`conv3dt_studio.app` - the command line and the Qt editor;
- :mod:`conv3dt_studio.resources` - package data (example graphs, graph JSON Schema, stylesheet).

Importing this package imports none of them.
"""

__version__ = "0.2.0"  # the one source of the version (pyproject.toml reads it from here)

__all__ = ["__version__"]
