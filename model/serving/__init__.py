"""What the worker loads and runs, and the definitions training must share with it.

The feature encoder and per-user state, the label definition, the CNN+LSTM network, the
TorchScript archive (export, integrity checks, load) and the incremental scorer. Every
``torch.jit`` call lives in ``export``. Imports ``schemas`` only.
"""
