"""Denoising: the DnCNN test protocol, the official weights, the study's runs and their evaluation."""
