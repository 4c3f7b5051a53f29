"""
Tests for twisted-chat; run with C{python -m twisted.trial tests} or
C{python -m pytest tests}.
"""
