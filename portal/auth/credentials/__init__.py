"""The credential auth family (family.py) and the check request it may send (checker.py)."""

from portal.auth.credentials.family import SHAPES, CredentialFamily

__all__ = ["SHAPES", "CredentialFamily"]
