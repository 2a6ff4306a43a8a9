"""squad: run and supervise teams of AI coding agents in tmux."""

__version__ = "0.1.0"
