"""Model hyper-parameters: a frozen dataclass saved inside every artifact."""

from dataclasses import asdict, dataclass, fields
from typing import Any

HEADS = ("purchase", "cart_abandon")
DEFAULT_HORIZON_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the CNN+LSTM network and the prediction horizon it was trained for."""

    n_features: int
    conv_channels: int = 32
    kernel_size: int = 3
    hidden_size: int = 32
    dropout: float = 0.1
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
