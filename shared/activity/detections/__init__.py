"""The detections (docs/detections.md): one module each, listed in registry.py, run over a batch by evaluate."""
