"""How Keras users run a layer on each Keras backend: the forwards the benchmarks time.

KerasBackend.forward_variants() lists them, the default (what users run) first:

  tensorflow  "tf.function"                    the layers traced once into a graph, inputs as arguments: what
                                               model.predict runs (on TF its jit_compile="auto" resolves to
                                               False for an LSTM)
              "tf.function(jit_compile=True)"  the same graph compiled by XLA (labelled; "where it works":
                                               a cuDNN path cannot be XLA-compiled, so on a GPU it may fail)
              "eager"                          the layers called op by op (labelled; the agreement path)
  jax         "jax.jit"                        jax.jit of layer.stateless_call, weights and inputs as arguments,
                                               as Keras's own JAX trainer runs predict
              "eager"                          op by op (labelled; each call re-traces its lax.scan)
  torch       "no_grad"                        the layers called eagerly under torch.no_grad(), as Keras's torch
                                               trainer runs predict
              "torch.compile"                  the same call under torch.compile (labelled; the first call compiles)
              "eager"                          autograd recording on (labelled; the harness's earlier timing)

Each builder takes the built layers and returns forward(seq, inits, mask=None) -> (y, [h per layer and
direction], [c ...]) on tensors already placed on the device; the weights are the layers' own variables (jax:
their values, passed as arguments, so a changed weight is a new argument, never a baked-in constant); mask
[B, T] (per-example lengths) goes to every layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

VARIANTS: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tf.function", "tf.function(jit_compile=True)", "eager"),
    "jax": ("jax.jit", "eager"),
    "torch": ("no_grad", "torch.compile", "eager"),
}
EAGER = "eager"
# What one call of each covers (TimedForward.what, with the device and the sync around it).
COVERS = {
    "tf.function": "the layer calls traced once by tf.function into a graph, inputs as its arguments",
    "tf.function(jit_compile=True)": "the layer calls in one tf.function(jit_compile=True): an XLA program",
    "jax.jit": "jax.jit of layer.stateless_call, weights and inputs as its arguments",
    "no_grad": "the layer calls, eager, under torch.no_grad()",
    "torch.compile": "torch.compile of the layer calls, under torch.no_grad()",
    EAGER: "the layer calls, eager, op by op",
}

Forward = Callable[..., tuple[Any, list, list]]  # forward(seq, inits, mask=None)


def variants(runtime: str) -> tuple[str, ...]:
    return VARIANTS.get(runtime, (EAGER,))


def call_layers(layers: list, seq, inits: list, directions: int, call=None, mask=None) -> tuple[Any, list, list]:
    """The stacked layers called directly (or through call(k, layer, seq, init, mask)), each one's outputs split:
    LSTM -> [y, h, c]; Bidirectional -> [y, fh, fc, bh, bc]."""
    hs, cs = [], []
    for k, (layer, init) in enumerate(zip(layers, inits)):
        outs = layer(seq, initial_state=init, mask=mask) if call is None else call(k, layer, seq, init, mask)
        seq = outs[0]
        for d in range(directions):
            hs.append(outs[1 + 2 * d])
            cs.append(outs[2 + 2 * d])
    return seq, hs, cs


def build(runtime: str, variant: str, layers: list, directions: int) -> Forward:
    """forward(seq, inits) for `variant` of `runtime` (see the module docstring)."""
    if variant not in variants(runtime):
        raise ValueError(f"variant: expected one of {variants(runtime)} on Keras's {runtime} backend, got {variant!r}")
    direct = lambda seq, inits, mask=None: call_layers(layers, seq, inits, directions, mask=mask)  # noqa: E731
    if variant == EAGER:
        return direct
    if runtime == "tensorflow":
        import tensorflow as tf

        return tf.function(direct, jit_compile=variant == "tf.function(jit_compile=True)")
    if runtime == "jax":
        return _jax_jit(layers, directions)
    import torch

    def no_grad(fn):
        def call(seq, inits, mask=None):
            with torch.no_grad():
                return fn(seq, inits, mask)
        return call

    return no_grad(direct if variant == "no_grad" else torch.compile(direct))


def _jax_jit(layers: list, directions: int) -> Forward:
    import jax

    def stateless(trainable, non_trainable, seq, inits, mask):
        return call_layers(layers, seq, inits, directions, lambda k, layer, s, init, m: layer.stateless_call(
            trainable[k], non_trainable[k], s, initial_state=init, mask=m)[0], mask)  # (outputs, non-trainable values)

    jitted = jax.jit(stateless)
    trainable = [[v.value for v in layer.trainable_variables] for layer in layers]
    non_trainable = [[v.value for v in layer.non_trainable_variables] for layer in layers]
    return lambda seq, inits, mask=None: jitted(trainable, non_trainable, seq, inits, mask)
