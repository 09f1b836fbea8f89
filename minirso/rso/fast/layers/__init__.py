"""Layers in the shapes the fast path runs: a conv and its average pool as one strided convolution
(pooled_conv.py), convolution and batch-norm of small maps in the rows layout (N, H, C, W)
(row_conv.py, rows_batchnorm.py). Each has a slow twin in minirso/layers/ that the tests hold it to."""
