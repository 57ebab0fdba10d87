"""The spec an ONNX model's LSTM nodes determine: the stack of chained LSTM nodes (harness.backends.onnx finds
it), hidden_size, direction and clip (the gate_clip) from the attributes, input size from W, a bias kind from B
(ONNX holds two: "double"), peepholes from P. ONNX LSTM nodes have no projection, forget_bias or cell clip."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def spec_fields(native, select, what: str = "SRC"):
    from ..backends import onnx as ox
    from ..spec import LSTMSpec

    if isinstance(native, Mapping):  # the harness's own initializers lstm_{k}.W ...
        return {}, {}
    model = ox._load(native)
    graph = ox._Graph(model)
    lstms = [n for n in graph.nodes if n.op_type == "LSTM" and n.domain in ("", "ai.onnx")]
    if not lstms:
        raise ValueError(f"{what}: the ONNX model's main graph has no LSTM node")
    nxt = {id(n): graph.next_layer(n) for n in lstms}
    followers = {id(v) for v in nxt.values() if v is not None}

    def length(start):
        n, node = 1, start
        while nxt[id(node)] is not None:
            node, n = nxt[id(node)], n + 1
        return n

    starts = [n for n in lstms if id(n) not in followers]
    if select is None:
        if len(starts) != 1:
            raise ValueError(f"{what}: the ONNX model has {len(starts)} LSTM stacks, starting at "
                             f"{[n.name for n in starts]}: name one with --select (e.g. --select {starts[0].name})")
        start = starts[0]
    else:
        scope = select.strip("/")
        matched = [n for n in lstms if n.name.strip("/") == scope or n.name.lstrip("/").startswith(scope + "/")]
        if not matched:
            raise ValueError(f"--select {select}: names no LSTM node of the ONNX model ({[n.name for n in lstms]})")
        start = matched[0]
    L = length(start)
    nodes = ox._nodes_from_model(model, LSTMSpec(input_size=1, hidden_size=1, num_layers=L), select or None)
    first = nodes[0]
    W = np.shape(first.tensors["W"])
    H = first.hidden_size or np.shape(first.tensors["R"])[-1]
    bidirectional = first.direction == "bidirectional"
    fields = {"input_size": int(W[2]), "hidden_size": int(H), "num_layers": L, "bidirectional": bidirectional,
              "bias": "double" if "B" in first.tensors else "none", "peephole": "P" in first.tensors,
              "proj_size": 0, "forget_bias": 0.0, "cell_clip": None, "proj_clip": None, "gate_clip": first.clip}
    evidence = {"input_size": f"LSTM node {first.name!r} W is {list(W)}",
                "hidden_size": f"LSTM node {first.name!r} hidden_size",
                "num_layers": f"{L} chained LSTM node(s) from {first.name!r}",
                "bidirectional": f"LSTM node {first.name!r} direction={first.direction!r}",
                "bias": f"LSTM node {first.name!r} {'has' if 'B' in first.tensors else 'has no'} B",
                "peephole": f"LSTM node {first.name!r} {'has' if 'P' in first.tensors else 'has no'} P"}
    evidence["gate_clip"] = f"LSTM node {first.name!r} " + ("has no clip" if first.clip is None else f"clip={first.clip:g}")
    for feature in ("proj_size", "forget_bias", "cell_clip", "proj_clip"):
        evidence[feature] = "the ONNX LSTM operator has none"
    return fields, evidence
