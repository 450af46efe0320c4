"""Looking at gradients: :func:`fnn.gradcheck` (manual vs ``jax.grad`` vs finite differences),
:func:`fnn.backprop_trace` (every Z, A, δ, ∂W of one batch) and the per-layer training
diagnostics. Imports the math, optim and data; never the engine or the experiment layer.
"""
