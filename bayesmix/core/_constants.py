"""Numerical constants shared by the numpy density layer and the numba kernels.

A leaf module (it imports nothing from bayesmix): :mod:`bayesmix.core._gaussian` selects the
numba kernels as its backend, so the kernel modules cannot import it and take their
constants from here. Use them through :mod:`bayesmix.core._gaussian` elsewhere.
"""

import numpy as np

#: log(2 pi), shared by every Gaussian density in bayesmix (numpy, numba, PyTensor)
LOG_2PI = float(np.log(2.0 * np.pi))
