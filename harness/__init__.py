"""lstm-harness: one canonical LSTM, converted to and from every framework, checked against an
exact float64 oracle.

    from harness import LSTMSpec, CanonicalLSTM, convert
"""

from .backends import NonFiniteWeights, NotInstalled, UnsupportedFeature, convert
from .canonical import GATES, CanonicalLSTM, LayerWeights
from .outputs import LSTMOutput
from .spec import LSTMSpec

__all__ = [
    "CanonicalLSTM", "GATES", "LSTMOutput", "LSTMSpec", "LayerWeights", "NonFiniteWeights", "NotInstalled",
    "UnsupportedFeature",
    "convert",
]
__version__ = "0.1.0"
