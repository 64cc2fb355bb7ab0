"""OneShotSeg: one labelled 3D scan + unlabelled scans -> a student segmentation network."""
