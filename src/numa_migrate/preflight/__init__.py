"""Preflight: can these computes live-migrate NUMA guests (Nova config, charm, hosts)?"""
