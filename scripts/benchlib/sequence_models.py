"""The models of ``scripts/bench_sequence.py``: the recipes' sizes, fnn's GPT and LSTM, and the
same networks in PyTorch holding fnn's weights.

Two recipes, each the sizes of a shipped config (tests/scripts/test_bench.py checks that they
agree with it):

* ``cpu``: configs/char_gpt.toml, nanoGPT's CPU recipe: block 64, batch 12, 4 blocks of 4 heads,
  128 dims, dropout 0, 2,000 iterations, 20 evaluation batches;
* ``gpu``: configs/shakespeare_char.toml, nanoGPT's full Shakespeare recipe: block 256, batch 64,
  6 blocks of 6 heads, 384 dims, dropout 0.2 (after the embeddings, on the attention weights and
  on both residual branches), 5,000 iterations, 200 evaluation batches.

Both: AdamW(1e-3, b2 = 0.99, weight decay 0.1 on matrices and embeddings) after clipping at
global norm 1.0; 100 warmup steps, then cosine decay to 1e-4; evaluation every 250 steps.
The LSTM case (Embedding 64, LSTM 256) takes the recipe's block and batch.

Like every benchlib module this one imports only the standard library at the top.
"""
from __future__ import annotations

V = 65  # the vocabulary of the timing's random tokens (nanoGPT's Shakespeare has 65 symbols)

RECIPES = {
    "cpu": {"config": "char_gpt.toml", "t": 64, "b": 12,
            "gpt": dict(d=128, heads=4, depth=4, dropout=0.0), "lstm": dict(d=64, h=256),
            "iterations": 2000, "eval_interval": 250, "eval_iters": 20,
            "lr": 1e-3, "lr_min": 1e-4, "warmup": 100},
    "gpu": {"config": "shakespeare_char.toml", "t": 256, "b": 64,
            "gpt": dict(d=384, heads=6, depth=6, dropout=0.2), "lstm": dict(d=64, h=256),
            "iterations": 5000, "eval_interval": 250, "eval_iters": 200,
            "lr": 1e-3, "lr_min": 1e-4, "warmup": 100},
}


def shapes(quick: bool, recipe: str = "cpu") -> dict:
    """The sizes and recipe of each case (``quick``: tiny shapes and a short run, for a smoke
    test; the recipe's dropout is kept, so that its code runs)."""
    r = dict(RECIPES[recipe], name=recipe)
    r["gpt"], r["lstm"] = dict(r["gpt"]), dict(r["lstm"])
    if quick:
        r.update(t=16, b=2, eval_iters=1, warmup=1, lstm=dict(d=16, h=32),
                 gpt=dict(d=32, heads=2, depth=2, dropout=r["gpt"]["dropout"]))
    return r


def fnn_net(case: str, s: dict, vocab: int = V):
    """fnn's network of ``case``: the layers the recipe's config builds (the GPT) or the LSTM."""
    from fnn import Sequential
    from fnn.layers import (LSTM, Dense, Dropout, Embedding, LayerNorm, PositionalEmbedding,
                            Repeat, TransformerBlock)

    t = s["t"]
    if case == "gpt":
        g = s["gpt"]
        p = g.get("dropout", 0.0)
        layers = [Embedding(vocab, g["d"]), PositionalEmbedding(t)]
        layers += [Dropout(p)] if p > 0 else []
        layers += [Repeat(TransformerBlock(g["heads"], dropout=p), g["depth"]), LayerNorm()]
    else:
        layers = [Embedding(vocab, s["lstm"]["d"]), LSTM(s["lstm"]["h"]), LayerNorm()]
    return Sequential(layers + [Dense(vocab, activation="softmax")], input_shape=(t,))


def fnn_layers_override(s: dict) -> str:
    """``model.layers=[...]`` for ``fnn train --set``: the GPT of ``s`` in the configs' layers
    (the anchor's --quick run shrinks the shipped config with it)."""
    g = s["gpt"]
    p = g.get("dropout", 0.0)
    drop = f"{{type='dropout', rate={p}}}, " if p > 0 else ""
    return ("model.layers=[{type='embedding', features=%d}, {type='positional_embedding'}, %s"
            "{type='repeat', n=%d, layer={type='transformer_block', num_heads=%d, mlp_ratio=4, "
            "dropout=%s}}, {type='layer_norm'}]" % (g["d"], drop, g["depth"], g["heads"], p))


def fnn_optimizer():
    """What the configs build, at a constant rate (no schedule in a timing)."""
    from fnn import optim

    return optim.chain(optim.clip_by_global_norm(1.0),
                       optim.adamw(1e-3, b2=0.99, weight_decay=0.1,
                                   mask=optim.weights_only_mask))


def torch_model(case: str, s: dict, params, vocab: int = V):
    """The PyTorch module of ``case`` holding fnn's ``params`` (copied, float32, on the CPU)."""
    import jax
    import numpy as np
    import torch

    from benchlib.torch_sequence import modules

    def t_(a):
        return torch.tensor(np.asarray(a, np.float32))

    GPT, CharLSTM = modules(vocab, s["t"])

    def dense(lin, p):
        lin.weight.copy_(t_(p["w"]).T)
        lin.bias.copy_(t_(p["b"]))

    def norm(ln, p):
        ln.weight.copy_(t_(p["scale"]))
        ln.bias.copy_(t_(p["bias"]))

    with torch.no_grad():
        if case == "gpt":
            g = s["gpt"]
            m = GPT(g["d"], g["heads"], g["depth"], g.get("dropout", 0.0))
            m.wte.weight.copy_(t_(params[0]["w"]))
            m.wpe.weight.copy_(t_(params[1]["w"]))
            # [Dropout ({} params),] Repeat (every leaf stacked over the blocks), LN, Dense;
            # each block's two residual branches: LayerNorm, attention or MLP[, Dropout]
            for i, blk in enumerate(m.h):
                (p_ln1, p_attn, *_), (p_ln2, p_ff, *_) = jax.tree.map(lambda a: a[i], params[-3])
                norm(blk.ln_1, p_ln1)
                norm(blk.ln_2, p_ln2)
                dense(blk.c_attn, p_attn["qkv"])  # Q, K, V in that order
                dense(blk.c_proj, p_attn["proj"])
                dense(blk.c_fc, p_ff["fc"])
                dense(blk.mlp_proj, p_ff["proj"])
            norm(m.ln_f, params[-2])
            dense(m.lm_head, params[-1])
        else:
            c = s["lstm"]
            m = CharLSTM(c["d"], c["h"])
            m.wte.weight.copy_(t_(params[0]["w"]))
            w, b = np.asarray(params[1]["w"]), np.asarray(params[1]["b"])
            m.lstm.weight_ih_l0.copy_(t_(w[:c["d"]]).T)
            m.lstm.weight_hh_l0.copy_(t_(w[c["d"]:]).T)
            m.lstm.bias_ih_l0.copy_(t_(b))
            m.lstm.bias_hh_l0.zero_()
            norm(m.ln, params[2])
            dense(m.head, params[3])
    return m


def torch_device(device: str):
    """(torch.device, sync) for ``device`` "cpu" or "gpu" (CUDA; TF32 matmuls allowed, as nanoGPT
    allows them and as XLA's default float32 dot is on Ampere and later)."""
    import torch

    if device == "gpu":
        if not torch.cuda.is_available():
            raise RuntimeError("--device gpu: torch.cuda.is_available() is False")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        return torch.device("cuda"), torch.cuda.synchronize
    return torch.device("cpu"), lambda: None
