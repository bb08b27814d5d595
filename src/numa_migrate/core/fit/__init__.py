"""Fitting guests onto hosts: per-cell rules, cell assignment, reasons."""
