"""The connect portal: end users connect third-party accounts to a platform."""

__version__ = "0.1.0"
