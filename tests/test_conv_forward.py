"""benchmarks/conv_forward.py part 4: its column-blocked convolution is a convolution (against
``conv2d``), for every block width it times, stride 1 and the folded conv + pool's stride 2."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import conv_forward  # noqa: E402
from minirso.layers.conv import conv2d  # noqa: E402


@pytest.mark.parametrize("b", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("size,kernel,stride", [(7, 3, 1), (14, 4, 2), (9, 3, 1)])
def test_blocked_conv_equals_conv2d(b, size, kernel, stride):
    rng = np.random.default_rng(b + size)
    x = rng.standard_normal((5, 3, size, size))
    w = rng.standard_normal((4, 3, kernel, kernel))
    want = conv2d(x, w, stride, 1)
    n, o, ho, wo = want.shape
    xb = conv_forward.blocked_layout(x, kernel, stride, 1, b)
    assert xb.shape[1] == -(-wo // b)
    out = np.full((n, xb.shape[1], ho, o * b), np.nan)
    got = conv_forward.blocked_conv(xb, conv_forward.blocked_matrix(w, stride, b), ho, kernel, stride, out, step=2)
    got = got.reshape(n, xb.shape[1], ho, o, b).transpose(0, 3, 2, 1, 4).reshape(n, o, ho, -1)[..., :wo]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
