"""One SAE trained by the processes of a torchrun run (``torchrun --nproc_per_node N -m interp_lab train-sae``).

Every process walks the same seeded shuffled order and takes its own positions of each batch
(``Ranks.share``); what the loss is made of (the FVU's squared error and the batch variance it is
divided by, the means of the sparsity terms, batchtopk's top k x batch) is summed over the processes,
and so are the gradients, so a step is the single-process step on the whole batch up to float rounding.
Rank 0 alone writes the checkpoint, the training state and the metrics; the others wait for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
from torch import Tensor

T = TypeVar("T")

# Collectives wait this long: rank 0 alone harvests, evaluates (CE with the model spliced in) and writes
# records while the others wait at a barrier (idle: gloo blocks on its sockets).
WAIT = timedelta(hours=12)


@dataclass(frozen=True)
class Ranks:
    """This process's place in a torchrun run: ``rank`` of ``world_size``."""

    rank: int
    world_size: int

    @property
    def lead(self) -> bool:
        """Rank 0: the one that writes."""
        return self.rank == 0

    def share(self, batch_size: int) -> slice:
        """This process's positions of every batch: contiguous, the sizes differing by one at most."""
        return slice(self.rank * batch_size // self.world_size, (self.rank + 1) * batch_size // self.world_size)

    # -- collectives (every process calls the same ones in the same order) ----------------------------
    def sum(self, t: Tensor) -> Tensor:
        """``t`` summed over the processes (a new tensor, outside the graph)."""
        return self._reduce(t, torch.distributed.ReduceOp.SUM)

    def min(self, t: Tensor) -> Tensor:
        return self._reduce(t, torch.distributed.ReduceOp.MIN)

    def max(self, t: Tensor) -> Tensor:
        return self._reduce(t, torch.distributed.ReduceOp.MAX)

    def _reduce(self, t: Tensor, op) -> Tensor:
        out = t.detach().clone()
        torch.distributed.all_reduce(out, op=op)
        return out

    def rows(self, n: int) -> int:
        """The whole batch's size, ``n`` this process's part of it."""
        return int(self.sum(torch.tensor(n, dtype=torch.int64)))

    def spread(self, v: Tensor) -> Tensor:
        """sum |v - mean|^2 over the whole batch, v [n, d] this process's rows of it: the denominator of a
        batch FVU (two passes, as a single process computes it, rather than sum v^2 - n mean^2)."""
        v = v.detach()
        s = self.sum(torch.cat([v.new_tensor([len(v)]), v.sum(0)]))
        return self.sum((v - s[1:] / s[0]).pow(2).sum())

    def top(self, v: Tensor, m: int) -> tuple[Tensor, Tensor]:
        """This process's part of the ``m`` largest values of ``v`` [numel] over all processes: (values, with
        their gradient, and their indices in ``v``). Each process sends its own m largest, and every process
        finds the same cut in the union; values tied with the cut are all kept (a single process keeps
        exactly m), zeros never (they would pass nothing)."""
        cand = v.new_full((m,), float("-inf"))
        mine = v.detach().topk(min(m, v.numel()), sorted=False).values
        cand[: len(mine)] = mine
        every = [torch.empty_like(cand) for _ in range(self.world_size)]
        torch.distributed.all_gather(every, cand)
        cut = torch.cat(every).topk(m, sorted=False).values.min()
        idx = ((v >= cut) & (v > 0)).nonzero().squeeze(1)
        return v[idx], idx

    def any(self, mask: Tensor) -> Tensor:
        """A bool mask true wherever it is true on some process."""
        return self.max(mask.to(torch.uint8)).bool()

    def sum_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Every parameter's gradient replaced by its sum over the processes, in one message; a parameter
        no process has a gradient for keeps none (so that Adam skips it, as in a single process)."""
        params = list(params)
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params]
                         + [torch.tensor([p.grad is not None for p in params], dtype=params[0].dtype)])
        torch.distributed.all_reduce(flat)
        at = 0
        for p in params:
            g = flat[at: at + p.numel()].view_as(p)
            at += p.numel()
            p.grad = g.clone() if p.grad is None else p.grad.copy_(g)
        for p, had in zip(params, flat[at:].tolist()):
            if not had:
                p.grad = None

    def broadcast_(self, tensors: Iterable[Tensor]) -> None:
        """Rank 0's values of ``tensors`` copied into every process's, in place."""
        with torch.no_grad():
            for t in tensors:
                torch.distributed.broadcast(t, 0)

    def barrier(self) -> None:
        torch.distributed.barrier()

    def lead_first(self, fn: Callable[[], T]) -> T:
        """``fn()`` on rank 0, then, once it is done, on the others: for a step that writes a cache (a
        harvested store) the others then reuse."""
        if self.lead:
            out = fn()
            self.barrier()
            return out
        self.barrier()
        return fn()


@contextmanager
def process_group() -> Iterator[Ranks | None]:
    """The torchrun run this process is part of (WORLD_SIZE, RANK and the rendezvous address from the
    environment), or None outside torchrun or with a single process, which then trains as it always has.
    gloo carries CPU tensors, nccl CUDA ones where there is a GPU (the trainer runs on the CPU today).
    A process group the caller made is used and left alone; one made here is destroyed at the end."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield None
        return
    dist = torch.distributed
    own = not dist.is_initialized()
    if own:
        backend = "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            backend = "cpu:gloo,cuda:nccl"
        dist.init_process_group(backend=backend, timeout=WAIT)
    try:
        yield Ranks(dist.get_rank(), dist.get_world_size())
    finally:
        if own:
            dist.destroy_process_group()
