"""The modules of ``scripts/bench.py``, fnn side by side with PyTorch, Flax+optax and scikit-learn.

* :mod:`benchlib.settings`   the cases, the contestants and the sizes of a run;
* :mod:`benchlib.inputs`     the data, initial weights and batch order every contestant shares;
* :mod:`benchlib.measure`    timing of epochs, peak memory, time to a target accuracy;
* :mod:`benchlib.fnn_side`   fnn's contestants (and the matmul reference);
* :mod:`benchlib.peers`      PyTorch, Flax+optax and scikit-learn;
* :mod:`benchlib.workers`    one contestant per pinned child process;
* :mod:`benchlib.cases`      each case: which contestants, and the figures derived from them;
* :mod:`benchlib.report`     the targets, the environment record and ``bench.md``.

Every module imports only the standard library at the top: each worker imports its own
framework, and the peers (``pip install 'fnn[bench]'``) are never dependencies of fnn.
"""
