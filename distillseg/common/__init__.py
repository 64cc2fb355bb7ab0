"""Pieces both methods share: errors, device choice, progress events, model bundles, image IO, labels, metrics."""
