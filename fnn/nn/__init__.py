"""The math: every formula of the notes, each in one place beside its hand-written derivative.

* :mod:`~fnn.nn.activations` — g and g′ (softmax with its Jacobian-vector product);
* :mod:`~fnn.nn.initializers` — Glorot / He / LeCun;
* :mod:`~fnn.nn.layers` — one module per layer family, forward and backward side by side;
* :mod:`~fnn.nn.losses` — MSE and cross-entropies with their exact gradients;
* :mod:`~fnn.nn.regularizers` — L1 / L2 on every ``"w"`` leaf;
* :mod:`~fnn.nn.mlp`, :mod:`~fnn.nn.sequential` — the containers (:class:`fnn.MLP`,
  :class:`fnn.Sequential`);
* :mod:`~fnn.nn.objective` — ``loss_and_grad``: manual backprop or ``jax.grad``;
* :mod:`~fnn.nn.vjp` — the hand-written backward as a ``jax.custom_vjp``;
* :mod:`~fnn.nn.protocol`, :mod:`~fnn.nn.adapter` — the layer and network protocols, and a
  user's own network seen through them.

This folder imports only :mod:`fnn.util`: no engine, no experiment, no data.
"""
