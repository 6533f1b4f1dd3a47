"""The translation stage layer: FID/KID/mIoU evaluation, the timing workload and grid, batch inference."""
