"""The experiment layer: from a TOML config to a run directory, and from a run directory back
to a model.

* ``config/`` — the schema, validation, TOML in and out, ``--set`` overrides;
* :mod:`~fnn.experiment.layer_specs` — ``[[model.layers]]`` tables to :mod:`fnn.layers`;
* :mod:`~fnn.experiment.build` — config to data, network, optimizer and trainer; the plan;
* :mod:`~fnn.experiment.memory` — a run that cannot fit is refused before it is built;
* :mod:`~fnn.experiment.runner` — the run as a pipeline (resolve, plan, build, train, report),
  with :mod:`~fnn.experiment.rundir`, :mod:`~fnn.experiment.chunks`,
  :mod:`~fnn.experiment.progress` and :mod:`~fnn.experiment.results`;
* :mod:`~fnn.experiment.checkpoint` — the checkpoint format (exact resume);
* :mod:`~fnn.experiment.report`, :mod:`~fnn.experiment.diagnostic_plots`,
  :mod:`~fnn.experiment.model_report`, :mod:`~fnn.experiment.model_plots` — files and pictures;
* :mod:`~fnn.experiment.handle` (``fnn.load_run``), :mod:`~fnn.experiment.predict`,
  :mod:`~fnn.experiment.export`, :mod:`~fnn.experiment.compare` — a trained model leaving fnn.
* :mod:`~fnn.experiment.lr_find` (``fnn.lr_find``, ``fnn lr-find``) with
  :mod:`~fnn.experiment.lr_find_plot` — the learning-rate range test, one compiled program.

See docs/architecture.md for one ``fnn train`` traced through the pipeline.
"""
