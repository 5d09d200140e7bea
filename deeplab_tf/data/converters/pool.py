"""Running shard jobs in this process or in a pool of worker processes (one shard each)."""

from __future__ import annotations

import multiprocessing
import time
from typing import Dict, List

from deeplab_tf.data.converters import shards

_progress_queue = None  # Set in worker processes by _init_worker.


def _init_worker(queue) -> None:
    global _progress_queue
    _progress_queue = queue


def _worker_write_shard(job: shards.ShardJob) -> dict:
    return shards.write_shard(job, on_image=lambda: _progress_queue.put(1))


def run_jobs(jobs: List[shards.ShardJob], num_workers: int, progress) -> Dict[str, dict]:
    """Writes every job's shard; returns ``{shard name: stats}``.

    Args:
        jobs: the shards to write.
        num_workers: int. Worker processes (spawned); 1 writes in this process.
        progress: an object with ``update(n)``, called per example processed.

    Raises:
        The first error of a job (a worker's error is re-raised here); the pool is stopped.
    """
    results = {}
    if num_workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            results[job.name] = shards.write_shard(job, on_image=progress.update)
        return results
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    pool = context.Pool(min(num_workers, len(jobs)), initializer=_init_worker, initargs=(queue,))
    try:
        pending = {job.name: pool.apply_async(_worker_write_shard, (job,)) for job in jobs}
        while pending:
            while not queue.empty():
                progress.update(queue.get())
            for name in [n for n, r in pending.items() if r.ready()]:
                results[name] = pending.pop(name).get()  # Re-raises a worker's error.
            time.sleep(0.05)
        while not queue.empty():
            progress.update(queue.get())
        pool.close()
    finally:
        pool.terminate()
        pool.join()
    return results
