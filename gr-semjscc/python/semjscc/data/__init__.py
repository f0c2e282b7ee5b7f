"""Images in: CIFAR-10 (:mod:`.cifar10`, from a torchvision pickle folder, an image folder or a tar archive), other
sources (:mod:`.sources`), the pixel layout (:mod:`.imaging`) and image quality measures (:mod:`.metrics`)."""

from semjscc.data.cifar10 import CIFAR10_CLASSES, Dataset, load_cifar10, resolve_source

__all__ = ["CIFAR10_CLASSES", "Dataset", "load_cifar10", "resolve_source"]
