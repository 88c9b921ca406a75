"""How often a gloo process that exits without destroying its process group aborts.

Two processes spawned as Lightning's ``ddp_spawn`` spawns them (``trainer=ddp_sim``) join a
gloo group, gather a list on rank 0 (as the tasks' exports do) and exit, either leaving the
group to the interpreter's shutdown (what Lightning does for gloo) or destroying it at exit
(:class:`speechexp.runs.callbacks.DestroyProcessGroupAtExit`). Prints, per way, how many
of ``--runs`` pairs ended with a process killed by a signal (SIGABRT: "terminate called
without an active exception")::

    python scripts/bench_gloo_exit.py --runs 30
"""

from __future__ import annotations

import argparse
import atexit
import os
import socket

import torch.distributed as dist
import torch.multiprocessing as mp

from speechexp.runs.callbacks import destroy_initialized_process_group


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker(rank: int, destroy_at_exit: bool, port: int) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    if destroy_at_exit:
        atexit.register(destroy_initialized_process_group)
    gathered = [None, None] if rank == 0 else None
    dist.gather_object(list(range(rank, rank + 10)), gathered, dst=0)


def aborted_runs(destroy_at_exit: bool, runs: int) -> int:
    aborted = 0
    for _ in range(runs):
        try:
            mp.start_processes(worker, args=(destroy_at_exit, free_port()), nprocs=2, start_method="spawn")
        except mp.ProcessExitedException:
            aborted += 1
    return aborted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="process pairs per way")
    args = parser.parse_args()
    rows = [(name, aborted_runs(destroy, args.runs)) for name, destroy in
            (("group left to shutdown (Lightning, gloo)", False), ("destroyed at exit (speechexp)", True))]
    print("| exit | runs | aborted |\n|---|---:|---:|")
    for name, aborted in rows:
        print(f"| {name} | {args.runs} | {aborted} |")


if __name__ == "__main__":
    main()
