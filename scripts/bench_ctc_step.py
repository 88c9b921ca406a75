"""The custom CTC against the built-in the way training uses it: inside a training step.

Issue 9 saw one 15-epoch pair of ``experiment=asr_emotion`` runs where the custom CTC
took 1.23x the built-in's time, while shorter pairs were equal. ``bench_ctc.py`` times
the loss alone; this script times whole training steps of the multitask model
(``MultitaskSpeechModel`` with its default config) on realistic batches, so that the
loss runs next to the encoder's forward and backward with torch's threads busy:

* batch of ``--batch`` (16) utterances of 2-4 s at 100 frames/s, log-mel 80 (random
  features), subsampled by 2 by the model's front end (100-200 CTC frames);
* targets of 30-60 characters drawn from the 28 non-blank classes (vocab 29);
* one step = encoder forward, CTC loss (``log_probs.float()`` as the task calls it),
  emotion cross-entropy, backward of everything, gradient clipping, Adam step.

Each phase is timed (wall clock, CPU): ``encoder fwd`` (the model's forward), ``ctc fwd``
(the loss call; the custom loss computes its gradient here), ``ctc bwd`` (from
``loss.backward()`` until the gradient reaches ``log_probs``, via a tensor hook),
``encoder bwd`` (the rest of the backward) and ``optimizer`` (clipping + Adam).

Each phase is wall time; ``step cpu`` is the process CPU time of the step (all threads,
so threads spinning against each other show there).

Implementations run in alternating blocks of ``--steps`` consecutive steps
(A B A B ..., the first of each pair alternating too), after one warm-up block each,
all with the same model weights, batches and optimizer state at the start of a block
(so every block does identical work). Reported: median per-phase milliseconds per step
and the median over block pairs of the step-time ratio (each implementation against
the built-in, measured in neighbouring blocks).

After the table, a probe of the thread-contention hypothesis (see ``probe_after_parallel_op``).

Usage: ``python scripts/bench_ctc_step.py [--pairs 10] [--steps 5] [--impls builtin,custom] [--probe-reps 100]``.
Extra implementations for the threading study: ``custom-serial`` (the numba kernel on
the calling thread only) and ``custom-pool`` (always the thread pool, whatever the size).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from speechexp.losses.ctc import CTCLoss
from speechexp.models.multitask import MultitaskSpeechModel

PHASES = ("encoder fwd", "ctc fwd", "ctc bwd", "encoder bwd", "optimizer", "step", "step cpu")
VOCAB, N_MELS, EMOTIONS = 29, 80, 5


def make_batches(n_batches: int, batch: int, seed: int = 0) -> list[dict]:
    """Random log-mel batches: features [batch, frames, 80], lengths, padded tokens, emotions."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        lengths = torch.randint(200, 401, (batch,), generator=gen)
        features = torch.randn(batch, int(lengths.max()), N_MELS, generator=gen)
        token_lengths = torch.randint(30, 61, (batch,), generator=gen)
        tokens = torch.randint(1, VOCAB, (batch, int(token_lengths.max())), generator=gen)
        emotion = torch.randint(0, EMOTIONS, (batch,), generator=gen)
        out.append(dict(features=features, lengths=lengths, tokens=tokens, token_lengths=token_lengths, emotion=emotion))
    return out


# implementation -> the custom loss's numba thread policy (CTCLoss(threading=...)); None: the built-in
IMPLS = {"builtin": None, "custom": "auto", "custom-serial": "serial", "custom-pool": "pool"}


def loss_fn(name: str):
    if IMPLS[name] is None:
        return torch.nn.CTCLoss(blank=0, reduction="mean", zero_infinity=False)
    return CTCLoss(blank=0, reduction="mean", zero_infinity=False, threading=IMPLS[name])


def run_block(name: str, state: dict, batches: list[dict], steps: int) -> list[dict[str, float]]:
    """``steps`` training steps from the saved start state; per-step phase times (ms)."""
    model: MultitaskSpeechModel = state["model"]
    model.load_state_dict(state["weights"])
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    optimizer.load_state_dict(state["optim"])
    loss = loss_fn(name)
    model.train()
    times = []
    for i in range(steps):
        b = batches[i % len(batches)]
        reached = {}
        c0 = time.process_time()
        t0 = time.perf_counter()
        log_probs, out_lengths, emotion_logits = model(b["features"], b["lengths"])
        t1 = time.perf_counter()
        ctc = loss(log_probs.float(), b["tokens"], out_lengths, b["token_lengths"])
        t2 = time.perf_counter()
        total = ctc + F.cross_entropy(emotion_logits.float(), b["emotion"])
        log_probs.register_hook(lambda g: reached.setdefault("t", time.perf_counter()) and None)
        t3 = time.perf_counter()
        total.backward()
        t4 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t5 = time.perf_counter()
        c5 = time.process_time()
        th = reached.get("t", t3)
        times.append({
            "encoder fwd": (t1 - t0) * 1e3, "ctc fwd": (t2 - t1) * 1e3, "ctc bwd": (th - t3) * 1e3,
            "encoder bwd": (t4 - th) * 1e3, "optimizer": (t5 - t4) * 1e3, "step": (t5 - t0) * 1e3,
            "step cpu": (c5 - c0) * 1e3,
        })
    return times


def probe_after_parallel_op(impls: list[str], batch: dict, reps: int) -> dict[str, tuple[float, float]]:
    """The thread-contention hypothesis in isolation: median ms of one CTC forward+backward
    on the model's log-probs (a) after a pause (torch's OpenMP workers asleep) and (b) right
    after a parallel torch op (a matmul on every thread, whose OpenMP workers then spin
    for a while, as after the encoder's last op). Alternating, ``reps`` of each."""
    torch.manual_seed(0)
    model = MultitaskSpeechModel(n_mels=N_MELS, vocab_size=VOCAB, num_emotions=EMOTIONS).eval()
    with torch.no_grad():
        log_probs, out_lengths, _ = model(batch["features"], batch["lengths"])
    big = torch.randn(768, 768)
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in impls}

    def one(name: str) -> float:
        leaf = log_probs.detach().requires_grad_(True)
        start = time.perf_counter()
        loss_fn(name)(leaf, batch["tokens"], out_lengths, batch["token_lengths"]).backward()
        return (time.perf_counter() - start) * 1e3

    for i in range(reps + 1):
        for name in impls if i % 2 == 0 else impls[::-1]:
            time.sleep(0.02)  # OpenMP workers go to sleep
            quiet = one(name)
            big @ big  # every torch thread busy; its workers spin after it
            busy = one(name)
            if i > 0:  # the first round warms up
                out[name][0].append(quiet)
                out[name][1].append(busy)
    return {name: (statistics.median(q), statistics.median(b)) for name, (q, b) in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10, help="alternating block pairs per implementation")
    parser.add_argument("--steps", type=int, default=5, help="consecutive training steps per block")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--impls", default="builtin,custom",
                        help="comma-separated: builtin, custom, custom-serial, custom-pool (first is the reference)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-reps", type=int, default=100,
                        help="repetitions of the CTC-after-a-parallel-op probe (0: skip it)")
    args = parser.parse_args()
    impls = args.impls.split(",")
    unknown = [i for i in impls if i not in IMPLS]
    if unknown:
        parser.error(f"unknown implementation(s) {unknown}; choose from {list(IMPLS)}")
    torch.manual_seed(args.seed)
    model = MultitaskSpeechModel(n_mels=N_MELS, vocab_size=VOCAB, num_emotions=EMOTIONS)
    state = {"model": model, "weights": copy.deepcopy(model.state_dict())}
    state["optim"] = torch.optim.Adam(model.parameters(), lr=2e-3).state_dict()
    batches = make_batches(args.steps, args.batch, args.seed)
    for name in impls:  # warm-up: numba compilation/cache load, allocator, thread pools
        run_block(name, state, batches, args.steps)
    per_impl: dict[str, list[dict[str, float]]] = {name: [] for name in impls}
    block_ms: dict[str, list[float]] = {name: [] for name in impls}
    block_cpu: dict[str, list[float]] = {name: [] for name in impls}
    for pair in range(args.pairs):
        order = impls if pair % 2 == 0 else impls[::-1]
        for name in order:
            times = run_block(name, state, batches, args.steps)
            per_impl[name].extend(times)
            block_ms[name].append(sum(t["step"] for t in times))
            block_cpu[name].append(sum(t["step cpu"] for t in times))
    ref = impls[0]
    print(f"training step of MultitaskSpeechModel (default config), batch {args.batch}, 200-400 frames -> "
          f"100-200 CTC frames, targets 30-60, vocab {VOCAB}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.pairs} alternating block pairs x {args.steps} steps")
    head = (f"{'implementation':>15} | " + " ".join(f"{p:>11}" for p in PHASES)
            + f" | {'step ratio':>10} {'(min-max)':>11} | {'cpu ratio':>9}")
    print("median ms per step:")
    print(head)
    print("-" * len(head))
    for name in impls:
        med = {p: statistics.median(t[p] for t in per_impl[name]) for p in PHASES}
        ratios = [a / b for a, b in zip(block_ms[name], block_ms[ref])]
        cpu_ratio = statistics.median(a / b for a, b in zip(block_cpu[name], block_cpu[ref]))
        spread = f"({min(ratios):.2f}-{max(ratios):.2f})" if name != ref else ""
        print(f"{name:>15} | " + " ".join(f"{med[p]:>11.1f}" for p in PHASES)
              + f" | {statistics.median(ratios):>10.3f} {spread:>11} | {cpu_ratio:>9.3f}")
    print(f"step ratio: median over the {args.pairs} block pairs of (block wall time / {ref} block wall time), "
          "with its min-max;\ncpu ratio: the same for the process's CPU time (all threads; spinning counts).")
    if args.probe_reps > 0:
        probe = probe_after_parallel_op(impls, batches[0], args.probe_reps)
        print(f"\nCTC forward+backward alone on the model's log-probs (batch {args.batch}), median ms of "
              f"{args.probe_reps}, alternating:")
        print(f"{'implementation':>15} | {'after a pause':>13} {'after a matmul':>14} {'busy/pause':>10}")
        for name, (quiet, busy) in probe.items():
            print(f"{name:>15} | {quiet:>13.2f} {busy:>14.2f} {busy / quiet:>10.2f}")


if __name__ == "__main__":
    main()
