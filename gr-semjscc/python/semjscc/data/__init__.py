"""Datasets. CIFAR-10 from a torchvision pickle folder, an image folder or a tar archive."""

from semjscc.data.cifar10 import CIFAR10_CLASSES, Dataset, load_cifar10, resolve_source

__all__ = ["CIFAR10_CLASSES", "Dataset", "load_cifar10", "resolve_source"]
