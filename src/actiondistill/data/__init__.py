"""Video data: the synthetic world, readers, samplers, transforms and datasets."""
