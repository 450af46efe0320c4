"""Layers, one module per family; the contract is :mod:`fnn.nn.protocol`. Channels-last (NHWC).

    Dense(units, activation, initializer)                               dense.py
    Conv2D(filters, kernel_size, strides, padding, activation, ...)     conv.py
    MaxPool2D, AvgPool2D (valid windows), GlobalAvgPool2D               pooling.py
    Flatten, Activation                                                 reshape.py
    Dropout (inverted; dropout_mask / dropout_forward / dropout_backward)   dropout.py
    BatchNorm, LayerNorm                                                normalization.py
    Residual(layers): Y = X + f(X)                                      residual.py
    Embedding(vocab_size, features), PositionalEmbedding(max_len)       embedding.py
    CausalSelfAttention(num_heads, dropout)                             attention.py
    FeedForward(mlp_ratio), TransformerBlock(num_heads, mlp_ratio, dropout)   transformer.py
    Repeat(layer, n): n stacked copies, lax.scan forward / reverse backward     repeat.py
    LSTM(units, return_sequences), SimpleRNN(units, activation, ...)    recurrent.py
    chain: shapes / init / forward / backward over a list of layers     chain.py
"""

from fnn.nn.layers.attention import CausalSelfAttention
from fnn.nn.layers.conv import Conv2D, ConvCache, resolve_formulation
from fnn.nn.layers.dense import Dense, DenseCache
from fnn.nn.layers.embedding import Embedding, PositionalEmbedding
from fnn.nn.layers.dropout import Dropout, dropout_backward, dropout_forward, dropout_mask
from fnn.nn.layers.normalization import BatchNorm, LayerNorm
from fnn.nn.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from fnn.nn.layers.recurrent import LSTM, SimpleRNN
from fnn.nn.layers.repeat import Repeat
from fnn.nn.layers.reshape import Activation, Flatten
from fnn.nn.layers.residual import Residual
from fnn.nn.layers.transformer import FeedForward, TransformerBlock

__all__ = [
    "Dense", "DenseCache", "Conv2D", "ConvCache", "resolve_formulation", "MaxPool2D",
    "AvgPool2D", "GlobalAvgPool2D", "Flatten", "Activation", "Dropout", "dropout_mask",
    "dropout_forward", "dropout_backward", "BatchNorm", "LayerNorm", "Residual",
    "Embedding", "PositionalEmbedding", "CausalSelfAttention", "FeedForward", "TransformerBlock",
    "Repeat", "LSTM", "SimpleRNN",
]
