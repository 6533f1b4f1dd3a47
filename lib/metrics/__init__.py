"""Metrics: PSNR/SSIM (scikit-image), FID/KID (pytorch-fid features), mIoU, timing."""
