"""The CNN+LSTM propensity network (nn.Modules only; scripted by model.serving.export).

This module stays at ``model.network`` whatever else moves: an exported model file names its
TorchScript code by this path (``__torch__.model.network.PropensityNet``) and the loader checks
that code against a fresh scripting, so moving it would refuse every model file already saved.
"""

import torch
from torch import Tensor, nn

from model.serving.config import HEADS, ModelConfig


class PropensityNet(nn.Module):
    """Causal Conv1d over per-event features -> LSTM -> one sigmoid head per target.

    ``run`` continues a user's sequence from a saved state (the last kernel_size-1 input
    rows, and the LSTM's h and c), so one event costs one step and a whole sequence
    scored at once gives the same numbers as the same events scored one by one.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_features = config.n_features
        self.context = config.kernel_size - 1
        self.hidden_size = config.hidden_size
        self.conv = nn.Conv1d(config.n_features, config.conv_channels, config.kernel_size)
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(config.conv_channels, config.hidden_size, batch_first=True)
        self.head = nn.Linear(config.hidden_size, len(HEADS))
        # Platt scaling per head, fitted after training: p = sigmoid(scale * logit + bias).
        self.calibration_scale: Tensor
        self.calibration_bias: Tensor
        self.register_buffer("calibration_scale", torch.ones(len(HEADS)))
        self.register_buffer("calibration_bias", torch.zeros(len(HEADS)))

    def initial_state(self, batch: int) -> tuple[Tensor, Tensor, Tensor]:
        """Zero state: (window (B, k-1, F), h (B, H), c (B, H))."""
        window = torch.zeros(batch, self.context, self.n_features)
        h = torch.zeros(batch, self.hidden_size)
        c = torch.zeros(batch, self.hidden_size)
        return window, h, c

    def run_logits(
        self, x: Tensor, window: Tensor, h: Tensor, c: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """x (B, T, F) after state -> raw logits (B, T, heads) and the state after x."""
        full = torch.cat([window, x], dim=1)  # (B, k-1+T, F)
        z = torch.relu(self.conv(full.transpose(1, 2))).transpose(1, 2)  # (B, T, C)
        z = self.dropout(z)
        out, (h_n, c_n) = self.lstm(z, (h.unsqueeze(0), c.unsqueeze(0)))  # out (B, T, H)
        logits = self.head(self.dropout(out))
        new_window = full[:, full.size(1) - self.context :, :]
        return logits, new_window, h_n.squeeze(0), c_n.squeeze(0)

    def calibrate(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits * self.calibration_scale + self.calibration_bias)

    @torch.jit.export
    def run(
        self, x: Tensor, window: Tensor, h: Tensor, c: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Calibrated probabilities (B, T, heads) for x, continuing from the given state."""
        logits, window, h, c = self.run_logits(x, window, h, c)
        return self.calibrate(logits), window, h, c

    def forward(self, x: Tensor) -> Tensor:
        """Calibrated probabilities (B, T, heads) for whole sequences from the zero state."""
        window, h, c = self.initial_state(x.size(0))
        return self.run(x, window, h, c)[0]

    def logits(self, x: Tensor) -> Tensor:
        """Raw logits (B, T, heads) from the zero state, for training and calibration."""
        window, h, c = self.initial_state(x.size(0))
        return self.run_logits(x, window, h, c)[0]
