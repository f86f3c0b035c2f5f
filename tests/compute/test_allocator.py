"""glibc's allocator tuned by the compute core: freed output-sized temporaries are reused, not
unmapped and faulted in again every training step (compute.memory.retain_freed_memory)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

_FAULTS = """
import resource
import numpy as np
from conv3dt_studio.compute import Conv3DTranspose, Graph, Input, TimeDistributed
from conv3dt_studio.compute import conv3d_transpose_ops as ops
from conv3dt_studio.compute.memory import retain_freed_memory
ops.warm_up()  # as the editor and `bench` do first: it changes glibc's thresholds
g = Graph([Input((1, 16, 16, 16, 16)), TimeDistributed(Conv3DTranspose(n_filters=16, size=3, activation="relu"))])
rng = np.random.default_rng(0)
x = rng.standard_normal((8, 1, 16, 16, 16, 16), dtype=np.float32)
y = rng.random((8, 1, 16, 18, 18, 18), dtype=np.float32)
for step in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    g.train_step(x, y)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(retain_freed_memory(), faults, y.nbytes // 4096)
"""


@pytest.mark.skipif(
    not platform.libc_ver()[0].startswith("glibc"), reason="mallopt is glibc's (Linux)"
)
@pytest.mark.parametrize("setting", ["", "system"])
def test_training_steps_reuse_freed_memory_without_page_faults(setting):
    """A training step of a 16->16 channel layer (output 2.8 MiB): with glibc's defaults, after
    the kernels' warm-up, every step maps its output-sized temporaries afresh and faults in
    their pages again (about 3.5 outputs' worth); tuned, the fourth step faults in next to
    nothing. CONV3DT_MALLOC=system leaves the defaults."""
    env = {**os.environ, "CONV3DT_MALLOC": setting}
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    tuned, faults, output_pages = out[0] == "True", int(out[1]), int(out[2])
    assert tuned == (setting == "")
    assert faults < output_pages // 10 if tuned else faults > output_pages
