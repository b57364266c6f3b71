"""dockyard: a Docker Engine API daemon on containerd."""

__version__ = "0.1.0"
