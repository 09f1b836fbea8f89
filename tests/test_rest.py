"""RestPass (the incremental evaluator's fast forward from layer z) against its slow twin, Sequential.forward_from."""
import numpy as np
import pytest

from minirso.backend import to_numpy
from minirso.rso.fast.layers.pooled_conv import PooledConv2D
from minirso.rso.fast.layers.row_conv import to_rows
from minirso.nets import conv_bn_net, he_normal_, paper_mnist_net
from minirso.rso.fast.rest import RestPass


def _inputs(model, start, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n,) + tuple(model.shapes[start])) + 0.3).astype(dtype)


@pytest.mark.parametrize("rows_max_width,low_gamma", [(0, 0.5), (4, 0.5), (None, 0.5), (None, -1.5)])
@pytest.mark.parametrize("groups", [1, 3])
def test_rest_pass_matches_forward_from_at_every_layer(xp, groups, rows_max_width, low_gamma):
    """rows_max_width: no rows layout, from the 4-wide maps on, everywhere; gamma in [low_gamma, 1.5]:
    with negative gammas some fused batch-norm + ReLU + conv steps fall back to the written-out form."""
    model = conv_bn_net([3, 4, 4, 4, 4, 3], pool_after={1, 3}, input_shape=(1, 8, 8), dtype="float64")
    he_normal_(model, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for layer in model.layers:  # batch-norm with non-trivial gamma and beta
        if "gamma" in layer.params:
            layer.params["gamma"][...] = rng.uniform(low_gamma, 1.5, layer.params["gamma"].shape)
            layer.params["beta"][...] = rng.normal(0, 0.3, layer.params["beta"].shape)
    model.to(xp).train(True)
    for start in range(len(model.layers)):
        h = xp.asarray(_inputs(model, start, 4 * groups, "float64", seed=start))
        slow = to_numpy(model.forward_from(start, h, groups=groups))
        rest = RestPass(model, start, rows_max_width)
        fast = to_numpy(rest(h.copy(), groups))
        np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-10, err_msg=f"from layer {start}")
        again = to_numpy(rest(2 * h, groups))  # the rows-layout buffers are reused: a second call is right too
        np.testing.assert_allclose(again, to_numpy(model.forward_from(start, 2 * h, groups=groups)), rtol=1e-10,
                                   atol=1e-10, err_msg=f"second call from layer {start}")


def test_rest_pass_folds_the_paper_nets_pools_and_matches_in_float32():
    model = paper_mnist_net().train(True)
    rest = RestPass(model, 8)  # from bn3: bn3+relu, conv4+pool, bn4+relu, conv5, bn5+relu, conv6, bn6, gap, flatten, dense
    kinds = [(kind, type(layer).__name__, relu) for kind, layer, relu in rest.steps]
    # every map is at most 14 wide (ROWS_MAX_WIDTH): the whole pass in the rows layout, each
    # batch-norm + ReLU fused with the conv after it, the last batch-norm with the global pool
    assert kinds == [("to_rows", "NoneType", False)] + [("rows_bn_relu_conv", "tuple", True)] * 3 + [
        ("rows_bn_gap", "BatchNorm2D", False), ("layer", "Flatten", False), ("layer", "Dense", False)]
    assert rest.takes_rows
    narrow = RestPass(model, 8, rows_max_width=8)  # the 14-wide maps directly, conv4 and its pool folded
    assert [kind for kind, _, _ in narrow.steps][:4] == ["bn", "layer", "to_rows", "rows_bn_relu_conv"]
    assert isinstance(narrow.steps[1][1], PooledConv2D)
    assert all("rows" not in kind for kind, _, _ in RestPass(model, 8, rows_max_width=0).steps)
    h = _inputs(model, 8, 60, "float32")
    slow = model.forward_from(8, h, groups=3)
    for fast in (rest(h.copy(), 3), narrow(h.copy(), 3), rest(to_rows(h), 3, rows=True)):  # rows=True: input already (N, H, C, W)
        np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-4)


def test_rest_pass_leaves_evaluation_mode_batchnorm_to_the_layer():
    model = paper_mnist_net().train(False)
    rest = RestPass(model, 15)
    assert all(kind != "bn" for kind, _, _ in rest.steps)
    h = _inputs(model, 15, 8, "float32")
    np.testing.assert_allclose(rest(h.copy()), model.forward_from(15, h), rtol=1e-5, atol=1e-5)


def test_rest_pass_runs_a_flatten_head_in_the_rows_layout(xp):
    """A flatten-head network: a run of small maps that ends in Flatten + Dense stays in the rows
    layout to the logits, the dense weight's columns permuted from Flatten's (C, H, W) order to
    (H, C, W) (RowsDense), also where the run holds no convolution; rows_max_width=0 keeps it out."""
    model = conv_bn_net([3, 4, 4], pool_after={0}, input_shape=(1, 8, 8), dtype="float64", head="flatten")
    he_normal_(model, np.random.default_rng(0))
    model.to(xp).train(True)
    flatten = len(model.layers) - 2
    for start in range(len(model.layers)):
        for width in (None, 0):
            rest = RestPass(model, start, width)
            kinds = [kind for kind, _, _ in rest.steps]
            if width is None and 2 <= start < flatten:  # the run from start (4x4 maps) ends in the head
                # (with the batch-norm + ReLU before it folded into it where the run holds them)
                assert kinds[-1] in ("rows_flatten_dense", "rows_bn_relu_dense") and "from_rows" not in kinds, kinds
                assert rest.takes_rows and (kinds[-1] == "rows_bn_relu_dense") == (start <= flatten - 2), kinds
            if width == 0:
                assert not any("rows" in kind for kind in kinds)
            h = xp.asarray(_inputs(model, start, 6, "float64", seed=start))
            slow = to_numpy(model.forward_from(start, h, groups=2))
            np.testing.assert_allclose(to_numpy(rest(h.copy(), 2)), slow, rtol=1e-10, atol=1e-10,
                                       err_msg=f"from layer {start}")
            if rest.takes_rows and kinds[0] == "to_rows":
                np.testing.assert_allclose(to_numpy(rest(to_rows(h), 2, rows=True)), slow, rtol=1e-10, atol=1e-10)
    # a negative gamma before the head: the fold declines and batch-norm + ReLU are written out
    bn = model.layers[flatten - 2]
    bn.params["gamma"][1] = -0.7
    rest = RestPass(model, 2)
    assert [kind for kind, _, _ in rest.steps][-1] == "rows_bn_relu_dense"
    h = xp.asarray(_inputs(model, 2, 6, "float64", seed=2))
    np.testing.assert_allclose(to_numpy(rest(h.copy(), 2)), to_numpy(model.forward_from(2, h, groups=2)),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_batchnorm_then_global_pool_from_the_statistics_in_nchw(xp, dtype):
    from minirso.layers import BatchNorm2D
    from minirso.rso.fast.layers.rows_batchnorm import batchnorm_gap
    rng = np.random.default_rng(7)
    bn = BatchNorm2D(4, dtype=dtype)
    bn.params["gamma"][...] = rng.uniform(-1.5, 1.5, 4)
    bn.params["beta"][...] = rng.normal(0, 0.5, 4)
    bn.to(xp)
    x = xp.asarray((rng.standard_normal((6, 4, 7, 7)) * 2 + 10).astype(dtype))  # mean >> std
    slow = to_numpy(bn.forward(x, groups=3).mean(axis=(2, 3)))
    fast = to_numpy(batchnorm_gap(bn, x, 3, rows=False))
    tol = 1e-11 if dtype == "float64" else 1e-5
    assert fast.dtype == np.dtype(dtype)
    np.testing.assert_allclose(fast, slow, rtol=tol, atol=tol)
    model = paper_mnist_net().train(True)
    rest = RestPass(model, 18)  # bn6, gap, flatten, dense
    assert [kind for kind, _, _ in rest.steps] == ["bn_gap", "layer", "layer"] and rest.takes_rows
    h = _inputs(model, 18, 12, "float32")
    slow = model.forward_from(18, h, groups=3)
    for fast in (rest(h.copy(), 3), rest(to_rows(h), 3, rows=True)):
        np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-4)
