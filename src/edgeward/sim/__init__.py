"""A simulated fleet: gateways that report realistic telemetry (daily cycles, per-app load,
heavy-tailed network), with attacks and benign confounders injected at chosen gateways
and times, run offline through the fleet server's real detectors and an anchor-like
baseline, and scored against the ground truth (``edgeward sim``, ``bench/detection.py``).
"""
