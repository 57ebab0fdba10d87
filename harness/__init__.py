"""lstm-harness: one canonical LSTM, converted to and from every framework, checked against an
exact float64 oracle.

    from harness import LSTMSpec, CanonicalLSTM, convert
    from harness import assert_equivalent, diagnose     # two live LSTMs: agree? if not, which porting mistake?
"""

from .backends import NonFiniteWeights, NotInstalled, UnsupportedFeature, convert
from .canonical import GATES, CanonicalLSTM, LayerWeights
from .diagnosis import Diagnosis, diagnose
from .equivalence import Equivalence, assert_equivalent
from .outputs import LSTMOutput
from .spec import LSTMSpec

__all__ = [
    "CanonicalLSTM", "Diagnosis", "Equivalence", "GATES", "LSTMOutput", "LSTMSpec", "LayerWeights",
    "NonFiniteWeights", "NotInstalled", "UnsupportedFeature", "assert_equivalent", "convert", "diagnose",
]
__version__ = "0.1.0"
