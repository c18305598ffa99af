"""Camera axes worked by hand, shared by the camera and projector tests."""

import numpy as np

# Camera axes (rows x, y, z) worked by hand from PyTorch3D's look_at_rotation:
# z = -position / |position|, x = up x z, y = z x x. At the poles up x z is
# ~0, so x = y x z; the sign then follows float32's cos(elev), which is
# -4.4e-8 at 90 degrees and +1.2e-8 at 270 degrees.
s = np.sqrt(0.5)
HAND_AXES = {
    (0, 0): [(-1, 0, 0), (0, 1, 0), (0, 0, -1)],
    (0, 90): [(0, 0, 1), (0, 1, 0), (-1, 0, 0)],
    (0, 180): [(1, 0, 0), (0, 1, 0), (0, 0, 1)],
    (0, 270): [(0, 0, -1), (0, 1, 0), (1, 0, 0)],
    (0, -90): [(0, 0, -1), (0, 1, 0), (1, 0, 0)],
    (90, 0): [(1, 0, 0), (0, 0, 1), (0, -1, 0)],
    (-90, 180): [(-1, 0, 0), (0, 0, 1), (0, 1, 0)],
    (180, 0): [(1, 0, 0), (0, 1, 0), (0, 0, 1)],
    (270, 0): [(-1, 0, 0), (0, 0, 1), (0, 1, 0)],
    (225, -45): [(s, 0, s), (0.5, s, -0.5), (-0.5, s, 0.5)],
    (225, 45): [(s, 0, -s), (-0.5, s, -0.5), (0.5, s, 0.5)],
    (315, -45): [(-s, 0, -s), (-0.5, s, 0.5), (0.5, s, -0.5)],
    (315, 45): [(-s, 0, s), (0.5, s, 0.5), (-0.5, s, -0.5)],
}
