"""Scale-out with JAX's own runtime: device meshes, XLA collectives, ``jax.distributed``.

Two ways to use many devices, chosen by what is being trained:

* **data parallel** (a single run): a 1-d mesh with axis ``"data"``; every mini-batch is
  sharded along its batch axis, parameters and optimizer state are replicated, and the whole
  scanned run is jitted with those shardings, so XLA's SPMD partitioner turns the batch sums of
  the backward pass (``∂W = Aᵀδ``, ``∂b = Σ δ`` — manual or autodiff alike) into all-reduces.
  The training set is placed replicated (every device holds it — fine for sets that fit a
  device, like Fashion-MNIST as uint8); the per-epoch permutation is drawn from the same key on
  every device and process, so the global batch order is the single-device one.
* **sweep parallel** (a sweep): the members axis of the vmapped state is sharded over the same
  mesh axis — a 16-member sweep on 4 devices trains 4 members per device, no communication.

Across processes (hosts), :func:`initialize` calls ``jax.distributed.initialize`` (gloo
collectives on CPU, NCCL on GPU; TPU pods need no arguments), after which ``jax.devices()`` is
the global device list. Each process passes its host data to
``jax.make_array_from_process_local_data``; only process 0 writes files.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"

ENV_COORDINATOR = "FNN_COORDINATOR"
ENV_NUM_PROCESSES = "FNN_NUM_PROCESSES"
ENV_PROCESS_ID = "FNN_PROCESS_ID"


@dataclass(frozen=True)
class ParallelSpec:
    """Where a run executes.

    Attributes:
      devices: devices in the mesh; 1 = no mesh (default), 0 = every (global) device.
      coordinator: "host:port" of process 0 for multi-process runs ("" = single process).
      num_processes: processes in a multi-process run.
      process_id: this process's index in [0, num_processes).
      timeout: seconds to wait for every process to reach the coordinator.
    """

    devices: int = 1
    coordinator: str = ""
    num_processes: int = 1
    process_id: int = 0
    timeout: int = 60

    def __post_init__(self):
        if self.devices < 0:
            raise ValueError(f"parallel.devices: {self.devices}; expected >= 0 (0 = all devices)")
        if self.num_processes < 1:
            raise ValueError(f"parallel.num_processes: {self.num_processes}; expected >= 1")
        if not 0 <= self.process_id < self.num_processes:
            raise ValueError(f"parallel.process_id: {self.process_id}; expected 0 <= id < "
                             f"num_processes = {self.num_processes}")
        if self.num_processes > 1:
            host, _, port = self.coordinator.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"parallel.coordinator: {self.coordinator!r}; expected HOST:PORT "
                                 f"for a run of {self.num_processes} processes")

    @property
    def multiprocess(self) -> bool:
        return self.num_processes > 1


def spec_from_env(spec: ParallelSpec) -> ParallelSpec:
    """Fill multi-process settings from $FNN_COORDINATOR / $FNN_NUM_PROCESSES / $FNN_PROCESS_ID
    where the spec leaves them at their defaults."""
    coord = spec.coordinator or os.environ.get(ENV_COORDINATOR, "")
    try:
        n = spec.num_processes if spec.num_processes != 1 else int(os.environ.get(ENV_NUM_PROCESSES, 1))
        pid = spec.process_id if spec.process_id != 0 else int(os.environ.get(ENV_PROCESS_ID, 0))
    except ValueError as err:
        raise ValueError(f"environment: {ENV_NUM_PROCESSES}/{ENV_PROCESS_ID} must be integers ({err})") from None
    return ParallelSpec(spec.devices, coord, n, pid, spec.timeout)


_initialized = False


def initialize(spec: ParallelSpec) -> None:
    """Join a multi-process run (no-op for one process). Call before any other JAX work.

    Raises:
      ValueError: the coordinator cannot be reached within ``spec.timeout`` seconds (the
        message names the address).
    """
    global _initialized
    if not spec.multiprocess or _initialized:
        return
    if spec.process_id != 0:
        # JAX aborts the whole process (no exception) when the coordinator never answers, so
        # check first that something listens there, within the same bounded wait.
        wait_for_coordinator(spec.coordinator, spec.timeout, spec.process_id, spec.num_processes)
    if jax.config.jax_platforms in (None, "", "cpu") or "cpu" in str(jax.config.jax_platforms):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=spec.coordinator, num_processes=spec.num_processes,
            process_id=spec.process_id, initialization_timeout=spec.timeout,
        )
    except Exception as err:  # XlaRuntimeError / DEADLINE_EXCEEDED / connection refused
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"parallel.coordinator: could not join {spec.coordinator} as process "
            f"{spec.process_id} of {spec.num_processes} within {spec.timeout} s ({first[:160]})"
        ) from None
    _initialized = True


def wait_for_coordinator(address: str, timeout: float, process_id: int, num_processes: int) -> None:
    """Poll ``address`` (HOST:PORT) until a TCP connection succeeds or ``timeout`` seconds pass.

    Raises:
      ValueError: naming the address, when nothing answered in time.
    """
    import socket
    import time

    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                return
        except OSError as err:
            last = err.strerror or type(err).__name__
        if time.monotonic() >= deadline:
            raise ValueError(
                f"parallel.coordinator: {address} unreachable from process {process_id} of "
                f"{num_processes} after {timeout} s ({last}); start process 0 there first"
            )
        time.sleep(0.25)


def make_mesh(devices: int) -> Optional[Mesh]:
    """A 1-d mesh over the first ``devices`` global devices (0 = all); None for one device.

    Raises:
      ValueError: more devices asked for than exist (with the CPU hint).
    """
    available = jax.device_count()
    n = available if devices == 0 else devices
    if n > available:
        raise ValueError(
            f"parallel.devices: {devices}; only {available} device(s) available (on CPU, "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={devices} provides more)"
        )
    if jax.process_count() > 1 and n != available:
        raise ValueError(f"parallel.devices: {devices}; a multi-process run uses every device "
                         f"(0 or {available})")
    if n == 1:
        return None
    return Mesh(np.array(jax.devices()[:n]), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def sharded(mesh: Mesh) -> NamedSharding:
    """Sharded along the leading axis (batch rows, or sweep members)."""
    return NamedSharding(mesh, P(AXIS))


def place(mesh: Optional[Mesh], array, *, shard: bool = False):
    """Put a host array on the mesh: replicated, or split along its leading axis.

    Every process passes the same full array; each places only the part its devices hold.
    Typed PRNG key arrays are supported.
    """
    if mesh is None:
        return jax.device_put(array)
    if isinstance(array, jax.Array) and jax.dtypes.issubdtype(array.dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(array)
        data = place(mesh, np.asarray(jax.random.key_data(array)), shard=shard)
        return jax.random.wrap_key_data(data, impl=impl)
    arr = np.asarray(array)
    sharding = sharded(mesh) if shard else replicated(mesh)
    if not shard:
        return jax.make_array_from_process_local_data(sharding, arr, arr.shape)
    # Sharded: this process's rows are those of its addressable devices.
    idx = sharding.addressable_devices_indices_map(arr.shape)
    rows = sorted({(s[0].start or 0, s[0].stop or arr.shape[0]) for s in idx.values()})
    local = np.concatenate([arr[a:b] for a, b in rows]) if rows else arr[:0]
    return jax.make_array_from_process_local_data(sharding, local, arr.shape)


def constrain(tree, mesh: Optional[Mesh], *, shard: bool):
    """``with_sharding_constraint`` on every leaf (leading axis sharded, or replicated)."""
    if mesh is None:
        return tree
    s = sharded(mesh) if shard else replicated(mesh)
    return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, s), tree)


def to_host(tree):
    """Host NumPy copies of a pytree of (possibly multi-process) arrays; keys stay keys.

    Replicated arrays are read from a local shard; arrays sharded across processes are
    gathered with ``multihost_utils.process_allgather``.
    """
    def one(a):
        if not isinstance(a, jax.Array):
            return a
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(np.asarray(one(jax.random.key_data(a))),
                                            impl=jax.random.key_impl(a))
        if a.is_fully_addressable:
            return np.asarray(a)
        if a.is_fully_replicated:
            return np.asarray(a.addressable_data(0))
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(a, tiled=True))

    return jax.tree.map(one, tree)


def is_main_process() -> bool:
    """Whether this process writes files (process 0)."""
    return jax.process_index() == 0


def check_same_config(text: str) -> None:
    """Fail (not hang) when processes of one run were started with different configs.

    Raises:
      ValueError: naming this process and the mismatch.
    """
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    digest = np.frombuffer(hashlib.sha256(text.encode()).digest()[:8], np.int32).copy()
    everyone = np.asarray(multihost_utils.process_allgather(digest))
    everyone = everyone.reshape(jax.process_count(), -1)
    if not (everyone == everyone[0]).all():
        bad = [i for i in range(len(everyone)) if not (everyone[i] == everyone[0]).all()]
        raise ValueError(f"parallel: the resolved config of process(es) {bad} differs from "
                         "process 0's; start every process with the same config and --set values")


def check_divisible(mesh: Optional[Mesh], *, batch_size: int, members: Optional[int],
                    accumulate: int = 1) -> None:
    """Clear errors for shapes a mesh cannot split evenly (with gradient accumulation, each
    micro-batch of ``batch_size / accumulate`` rows is split over the devices)."""
    if mesh is None:
        return
    n = mesh.devices.size
    if members is not None and members > 1:
        if members % n:
            raise ValueError(f"parallel.devices: a sweep of {members} members cannot be split "
                             f"over {n} devices; use a member count divisible by {n}")
    elif accumulate > 1 and (batch_size // accumulate) % n:
        raise ValueError(f"training.accumulate: {accumulate} gives micro-batches of "
                         f"{batch_size // accumulate} rows, not divisible by the {n} devices of "
                         f"parallel.devices; use micro-batches of a multiple of {n} rows")
    elif batch_size % n:
        raise ValueError(f"training.batch_size: {batch_size} is not divisible by the {n} devices "
                         f"of parallel.devices; use a multiple of {n}")
