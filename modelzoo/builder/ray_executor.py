"""Distributed zoo building on Ray: one task per group, results written by the driver.

Each task trains one group of models and returns its rows as Arrow IPC bytes. The driver
writes every finished group into the zoo's shards (the same writer as the local executor)
as soon as it arrives, so a crash of the driver loses at most the groups in flight, and a
resumed build skips committed groups. A task whose worker dies is retried by Ray
(``max_retries``); since a group is committed only once, when its result arrives, no model is
lost or duplicated.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence

import pyarrow as pa

from modelzoo.builder.groups import GroupJob, group_tables
from modelzoo.errors import ZooError
from modelzoo.threads import limit_threads
from modelzoo.training import TrainConfig

#: Times Ray re-runs a group whose worker died (a killed process, a lost node).
MAX_RETRIES = 3


def train_group_ipc(job: GroupJob, cfgs: list[TrainConfig]) -> bytes:
    """Train one group in a Ray worker; return its rows as an Arrow IPC stream."""
    job.import_modules()  # plugin and user architectures/sources, before any lookup
    data = job.load_data()
    sink = pa.BufferOutputStream()
    writer = None
    with limit_threads(job.threads):  # one thread per CPU Ray gave the task
        for table in group_tables(job, cfgs, data):
            if writer is None:
                writer = pa.ipc.new_stream(sink, table.schema)
            writer.write_table(table)
    if writer is not None:
        writer.close()
    return sink.getvalue().to_pybytes()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast (instead of Ray's long retry loop) when ``host:port`` does not answer."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ZooError(f"Ray address {address!r} must look like HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ZooError(
            f"cannot connect to the Ray cluster at {address!r}: {e} "
            "(start it with `ray start --head` or omit --address for a local instance)"
        ) from None


def run_groups_ray(
    *,
    job: GroupJob,
    todo: Sequence[tuple[int, list[TrainConfig]]],
    address: str | None,
    on_done: Callable[[int, pa.Table], None],
    num_cpus_per_task: float = 1,
    num_gpus_per_task: float = 0,
) -> None:
    """Run ``todo`` groups as Ray tasks; call ``on_done(group, table)`` as each finishes."""
    try:
        import ray
    except ImportError:
        raise ZooError(
            "the ray executor needs Ray: pip install 'ray>=2.9' (or use --executor local)"
        ) from None
    started = False
    if address not in (None, "auto", "local"):
        _check_reachable(address)
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ZooError(f"cannot connect to the Ray cluster at {address!r}: {e}") from None
        started = True
    if job.device.startswith("cuda"):
        num_gpus_per_task = num_gpus_per_task or 1
    remote = ray.remote(
        num_cpus=num_cpus_per_task, num_gpus=num_gpus_per_task, max_retries=MAX_RETRIES
    )(train_group_ipc)
    job_ref = ray.put(job)
    pending = {remote.remote(job_ref, cfgs): gi for gi, cfgs in todo}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            gi = pending.pop(ref)
            try:
                payload = ray.get(ref)
            except ray.exceptions.RayError as e:
                raise ZooError(
                    f"group {gi} failed on Ray after {MAX_RETRIES} retries: {e}; "
                    "finished groups are saved, rerun the same command to resume"
                ) from None
            if payload:
                on_done(gi, pa.ipc.open_stream(payload).read_all())
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
