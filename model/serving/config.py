"""Model hyper-parameters: a frozen dataclass saved inside every artifact."""

from dataclasses import asdict, dataclass, fields
from typing import Any, Final

from schemas.units import DAY_MS

HEADS = ("purchase", "cart_abandon")
DEFAULT_HORIZON_MS = DAY_MS
# The network's shape: the one `propensity train` fits (ModelConfig's defaults), and the
# smaller one `propensity train --quick` fits in seconds, for CI and demos.
DEFAULT_CONV_CHANNELS: Final = 64
DEFAULT_HIDDEN_SIZE: Final = 64
DEFAULT_KERNEL_SIZE: Final = 3
DEFAULT_DROPOUT: Final = 0.1
QUICK_CONV_CHANNELS: Final = 32
QUICK_HIDDEN_SIZE: Final = 32


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the CNN+LSTM network and the prediction horizon it was trained for."""

    n_features: int
    conv_channels: int = DEFAULT_CONV_CHANNELS
    kernel_size: int = DEFAULT_KERNEL_SIZE
    hidden_size: int = DEFAULT_HIDDEN_SIZE
    dropout: float = DEFAULT_DROPOUT
    horizon_ms: int = DEFAULT_HORIZON_MS

    def __post_init__(self) -> None:
        if self.kernel_size < 2:
            raise ValueError("kernel_size must be >= 2 (the causal window keeps k-1 rows)")
        if self.horizon_ms <= 0:
            raise ValueError("horizon_ms must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
