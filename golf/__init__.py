"""golf: train, pack, verify and submit Parameter Golf entries."""
__version__ = "0.1.0"
