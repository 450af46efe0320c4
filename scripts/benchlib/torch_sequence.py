"""The PyTorch side of ``scripts/bench_sequence.py``: nanoGPT's GPT and a character LSTM, and the
anchor's training run as a child process of its own (NumPy and PyTorch only, no JAX), so that
its peak RSS is PyTorch's alone.

    python scripts/benchlib/torch_sequence.py SPEC.json

SPEC names ``weights`` (a ``torch.save`` of the GPT's ``state_dict``, copied from fnn's initial
parameters by the parent), ``data`` (an ``.npz`` of the training ids and the validation windows
fnn's loader made), the model's sizes (``dropout`` included) and the recipe, and ``device``
("cpu" or "gpu": CUDA); the child writes ``result`` (JSON: the validation loss, the training
loop's wall time, its peak RSS).
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time


def modules(vocab: int, block: int):
    """(GPT, CharLSTM): the module classes for a vocabulary and a block size."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def drop(p):  # no module at all at p = 0 (the CPU recipe's step is what it always was)
        return nn.Dropout(p) if p > 0 else nn.Identity()

    class Block(nn.Module):  # nanoGPT's Block, pre-LayerNorm, with nanoGPT's dropouts
        def __init__(self, d, heads, dropout=0.0):
            super().__init__()
            self.heads, self.p = heads, dropout
            self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
            self.resid_dropout, self.mlp_dropout = drop(dropout), drop(dropout)

        def forward(self, x):
            b, t, d = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
            q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2)
                       for z in (q, k, v))
            p = self.p if self.training else 0.0  # the attention weights' dropout
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
            x = x + self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(b, t, d)))
            h = self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
            return x + self.mlp_dropout(h)

    class GPT(nn.Module):
        def __init__(self, d, heads, depth, dropout=0.0):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(block, d)
            self.drop = drop(dropout)  # after the embeddings' sum
            self.h = nn.ModuleList(Block(d, heads, dropout) for _ in range(depth))
            self.ln_f, self.lm_head = nn.LayerNorm(d), nn.Linear(d, vocab)

        def forward(self, idx):
            x = self.drop(self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device)))
            for blk in self.h:
                x = blk(x)
            return self.lm_head(self.ln_f(x))

    class CharLSTM(nn.Module):
        def __init__(self, d, h):
            super().__init__()
            self.wte, self.lstm = nn.Embedding(vocab, d), nn.LSTM(d, h, batch_first=True)
            self.ln, self.head = nn.LayerNorm(h), nn.Linear(h, vocab)

        def forward(self, idx):
            return self.head(self.ln(self.lstm(self.wte(idx))[0]))

    return GPT, CharLSTM


def train_anchor(spec: dict) -> dict:
    """nanoGPT's recipe on the anchor's data: AdamW(lr, b2 = 0.99, decay 0.1 on matrices and
    embeddings), clip 1.0, linear warmup then cosine to lr_min (nanoGPT's get_lr), the spec's
    dropout; then, in eval mode (no dropout), the mean cross-entropy over every validation
    window. On the GPU the model and the data are on CUDA (TF32 matmuls, as nanoGPT), each
    batch is gathered on the CPU and copied over, and the clock stops after a synchronize."""
    import numpy as np
    import torch
    from torch.nn import functional as F

    torch.set_num_threads(spec["threads"])
    if spec.get("device", "cpu") == "gpu":
        if not torch.cuda.is_available():
            raise RuntimeError("device gpu: torch.cuda.is_available() is False")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        dev, sync = torch.device("cuda"), torch.cuda.synchronize
    else:
        dev, sync = torch.device("cpu"), (lambda: None)
    with np.load(spec["data"]) as z:
        train, xv, yv = (torch.tensor(z[k].astype(np.int64)) for k in ("train", "xv", "yv"))
    xv, yv = xv.to(dev), yv.to(dev)
    v, t, b, iterations = spec["vocab"], spec["block"], spec["batch"], spec["iterations"]
    gpt, _ = modules(v, t)
    model = gpt(spec["d"], spec["heads"], spec["depth"], spec.get("dropout", 0.0))
    model.load_state_dict(torch.load(spec["weights"]))
    model.to(dev).train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    lr, lr_min, warmup = spec["lr"], spec["lr_min"], spec["warmup"]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": rest, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.99))

    def rate(it):
        if it < warmup:
            return lr * (it + 1) / warmup
        ratio = (it - warmup) / max(1, iterations - warmup)
        return lr_min + 0.5 * (1.0 + np.cos(np.pi * ratio)) * (lr - lr_min)

    gen = torch.Generator().manual_seed(1337)
    torch.manual_seed(1337)  # the dropout masks: the same run twice
    window = torch.arange(t)
    sync()
    t0 = time.perf_counter()
    for it in range(iterations):
        ix = torch.randint(len(train) - t - 1, (b,), generator=gen)
        at = ix[:, None] + window  # the windows train[i:i + t] and their targets, one gather
        xb, yb = train[at].to(dev), train[at + 1].to(dev)
        for g in opt.param_groups:
            g["lr"] = rate(it)
        loss = F.cross_entropy(model(xb).reshape(-1, v), yb.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    sync()
    wall = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        total = sum(F.cross_entropy(model(xv[i:i + 256]).reshape(-1, v), yv[i:i + 256].reshape(-1),
                                    reduction="sum").item() for i in range(0, len(xv), 256))
    return {"torch_val_loss": total / yv.numel(), "torch_train_wall_s": wall,
            "torch_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    spec.setdefault("threads", len(os.sched_getaffinity(0)))
    out = train_anchor(spec)
    with open(spec["result"], "w") as f:
        json.dump(out, f)
