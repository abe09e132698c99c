"""Globus Compute support: the remote entry function, payload sizing, registration, a local stand-in.

Kept apart from ``tasks.pools.globus_compute.pool`` (the ExtractionPool) so each piece stays small
and the remote entry module imports nothing but the standard library at module level.
"""
