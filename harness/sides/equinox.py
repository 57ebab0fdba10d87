"""A list of equinox.nn.LSTMCell, one per (layer, direction) in layer * D + direction order (or `(cells, spec)`
where the list alone cannot say whether two cells are two layers or two directions). Equinox has no RNN
wrapper: the cells themselves run, scanned over time and vmapped over the batch by the equinox backend's
program."""

from __future__ import annotations

from .. import backends
from ..spec import LSTMSpec
from . import Side, dtype_name, framework_lengths, loaded


def _cells(obj):
    eqx = loaded("equinox")
    if eqx is None:
        return None
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], LSTMSpec):
        obj = obj[0]
    if isinstance(obj, eqx.nn.LSTMCell):
        return [obj]
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(c, eqx.nn.LSTMCell) for c in obj):
        return list(obj)
    return None


def recognise(obj) -> bool:
    return _cells(obj) is not None


def spec_of(cells: list) -> LSTMSpec:
    """The layers and directions the cells' sizes allow; refused where both readings fit (say it with a spec)."""
    first, n = cells[0], len(cells)
    H = first.hidden_size
    fits = []
    for D in (1, 2):
        if n % D:
            continue
        L = n // D
        wanted = [first.input_size if k == 0 else D * H for k in range(L) for _ in range(D)]
        if [c.input_size for c in cells] == wanted and all(c.hidden_size == H for c in cells):
            fits.append(LSTMSpec(input_size=first.input_size, hidden_size=H, num_layers=L, bidirectional=D == 2,
                                 bias="single" if first.use_bias else "none"))
    if not fits:
        raise ValueError(f"the cells' sizes {[(c.input_size, c.hidden_size) for c in cells]} are neither a stack nor "
                         "a bidirectional stack (layer * D + direction order)")
    if len(fits) > 1:
        raise ValueError(f"{n} cells of input {first.input_size} and hidden {H} are either {fits[0].num_layers} "
                         f"layers or {fits[1].num_layers} bidirectional layer(s): pass (cells, LSTMSpec(...)) to say "
                         "which")
    return fits[0]


def read(obj, select, option: str, lenient: bool) -> Side:
    if select is not None:
        raise ValueError(f"a list of equinox cells is one LSTM; got {option}={select!r}")
    cells = _cells(obj)
    spec = obj[1] if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], LSTMSpec) else spec_of(cells)
    backend = backends.get("equinox")
    model = backend.import_(cells, spec)
    dtype = dtype_name(cells[0].weight_ih.dtype)
    # What the backend's prepare() would hold, with the user's cells as the weights.
    live = backends.Prepared("equinox", spec, dtype, "cpu", {"spec": spec, "weights": cells, "dtype": dtype,
                                                             "device": "cpu"})
    side = Side(f"equinox {len(cells)} LSTMCell(s)", "equinox", model, dtype,
                lambda x, h0, c0, lengths=None: backend.run(live, x, h0, c0, lengths=lengths),
                "the user's cells, in the equinox backend's scan")
    return framework_lengths(side, "equinox")
