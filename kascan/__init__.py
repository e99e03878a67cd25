"""kascan: find leaked Kubeadapt API keys."""

__version__ = "0.1.0"
