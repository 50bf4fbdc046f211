"""Restyle's own checkov checks for Bicep (run with --external-checks-dir infra/checks)."""
