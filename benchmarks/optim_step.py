"""Step time of deepnotes' Adam/AdamW against torch's AdamW and the memory-bandwidth floor.

An AdamW step must read p, g, m, v and write p, m, v: 7 x 4 bytes per float32 parameter. The floor is
that traffic divided by the best bandwidth a large tensor copy or in-place add achieves on the same
device. Rows are torch's for-loop, foreach and fused AdamW and our three paths, all on the same
transformer-like set of tensors, as milliseconds and as ratios to torch's fused kernel and to the floor.
Use --threads 1 on a CPU shared with other jobs (OpenMP threads waiting on each other distort timings).
A narrow --width gives many small tensors, where host work per tensor (not memory traffic) sets the step
time: on a CPU that is a stand-in for a GPU step, whose kernels are too fast to hide the host's work.

    python benchmarks/optim_step.py --device cpu --params 25e6
    python benchmarks/optim_step.py --device cpu --params 2e5 --width 16   # ~770 small tensors
"""

from __future__ import annotations

import argparse
from unittest import mock

import torch

from deepnotes.core import pick_device
from deepnotes.core.timing import print_kernel_profile, time_call, time_interleaved
from deepnotes.optim import AdamW, fused


def param_shapes(total: int, d: int = 512) -> list[tuple[int, ...]]:
    """Shapes of a GPT-like stack of width ``d`` (qkv, proj, 2 LayerNorms, MLP) with ~``total`` elements."""
    layer = [(d, 3 * d), (3 * d,), (d, d), (d,), (d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,), (d,),
             (d,)]
    per_layer = sum(torch.Size(s).numel() for s in layer)
    shapes: list[tuple[int, ...]] = []
    while sum(torch.Size(s).numel() for s in shapes) + per_layer <= total:
        shapes += layer
    rest = total - sum(torch.Size(s).numel() for s in shapes)
    if rest >= d:
        shapes.append((rest // d, d))  # an embedding table takes up the remainder
    return shapes


def bandwidths(device: torch.device, n: int = 64 * 2**20) -> dict[str, float]:
    """Bytes per second of two streaming ops on float32 tensors of ``n`` elements.

    ``copy``: dst.copy_(src), 8 bytes per element counted (a CPU may also read dst before writing it, so this
    undercounts traffic there); ``in-place add``: a.add_(b), 12 bytes per element, the access pattern of an
    optimizer (read state, write it back in place).
    """
    a, b = torch.randn(n, device=device), torch.randn(n, device=device)
    copy_ms = time_call(lambda: a.copy_(b), device, warmup=3, repeat=15)
    add_ms = time_call(lambda: a.add_(b), device, warmup=3, repeat=15)
    return {"copy": 8 * n / (copy_ms / 1e3), "in-place add": 12 * n / (add_ms / 1e3)}


def make_step(device: torch.device, shapes, impl: str, lr: float = 1e-3, weight_decay: float = 0.01):
    gen = torch.Generator(device="cpu").manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen).to(device)) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen).to(device) * 1e-2
    owner, mode = impl.split("-")
    kw = dict(foreach=mode == "foreach", fused=mode.startswith("fused"))
    cls = torch.optim.AdamW if owner == "torch" else AdamW
    opt = cls(params, lr=lr, weight_decay=weight_decay, **kw)
    if mode in ("fused", "fused_nopack", "fused_packall"):
        # our fused path with its default packing threshold, with none, or with every tensor packed
        limit = {"fused": fused.pack_below(device), "fused_nopack": 0, "fused_packall": 1 << 62}[mode]

        def step():
            with mock.patch.dict(fused.PACK_BELOW, {device.type: limit}):  # restored after each step
                opt.step()
        return step
    return opt.step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--params", type=float, default=25e6, help="number of parameters (default 25e6)")
    ap.add_argument("--width", type=int, default=512, help="model width d of the tensor shapes (default 512)")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--impls",
                    default="torch-loop,torch-foreach,torch-fused,ours-loop,ours-foreach,ours-fused",
                    help="also: ours-fused_nopack (no packs: large-tensor calls only), ours-fused_packall")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    ap.add_argument("--profile", action="store_true",
                    help="after timing: kernel time per step and the top kernels (CUDA)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    shapes = param_shapes(int(args.params), args.width)
    n = sum(torch.Size(s).numel() for s in shapes)
    measured = bandwidths(device)
    bandwidth = max(measured.values())  # the best streaming rate seen sets the floor
    floor_ms = 7 * 4 * n / bandwidth * 1e3
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{n / 1e6:.1f}M float32 parameters in {len(shapes)} tensors; bandwidth "
          + ", ".join(f"{k} {v / 1e9:.1f} GB/s" for k, v in measured.items())
          + f"; floor (7 x 4 B/param) {floor_ms:.2f} ms")
    impls = args.impls.split(",")
    steps = {impl: make_step(device, shapes, impl) for impl in impls}
    # warm-up includes compilation for ours-fused; round-robin timing spreads machine load evenly
    times = time_interleaved(steps, device, warmup=2, rounds=args.repeat)
    ref = times.get("torch-fused")
    print(f"{'implementation':16s} {'ms/step':>9s} {'x torch-fused':>14s} {'x floor':>8s}")
    for impl, ms in times.items():
        vs_fused = f"{ms / ref:14.2f}" if ref else f"{'-':>14s}"
        print(f"{impl:16s} {ms:9.2f} {vs_fused} {ms / floor_ms:8.2f}")
    if ref and "ours-fused" in times:
        ratio = times["ours-fused"] / ref
        print(f"goal ours-fused <= 1.3 x torch-fused: {ratio:.2f}x -> {'met' if ratio <= 1.3 else 'NOT met'}")
    if args.profile:
        for impl, step in steps.items():
            print_kernel_profile(impl, step, device, times[impl])


if __name__ == "__main__":
    main()
