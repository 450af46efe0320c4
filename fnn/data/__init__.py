"""Datasets for fnn: synthetic sets, MNIST-format images, CSV/NPZ user data, splits, augmentation.

``load(name, **options)`` returns a :class:`Dataset` (host-side NumPy arrays) for every source:

==================  =============================================================================
name                options (default)
==================  =============================================================================
xor                 n_samples (4), noise (0.0), seed (0), val_fraction (0), test_fraction (0),
                    standardize (False). Defaults give exactly the notes' 4-point truth table.
moons, circles      n_samples (1000), noise (0.1 / 0.05), seed, val_fraction (0), test_fraction
                    (0.2), standardize; circles also factor (0.5)
spirals             ... num_classes (3), turns (1.0)
blobs               ... noise (1.0), num_classes (3), num_features (2)
sine                n_samples (1000), noise (0.1), seed, val_fraction, test_fraction (0.2), standardize
polynomial          ... num_features (2)
shapes              n_samples (1000), noise (0.1), seed, image_size (16), val_fraction (0),
                    test_fraction (0.2). Drawn shapes (square, circle, triangle, cross, ring),
                    uint8 images (batch, image_size²); see :mod:`fnn.data.shapes`.
fashion_mnist,      path (None), mirror (None), download (True), val_fraction (0), seed (0),
mnist               n_samples (None: all; n keeps the first n training and the first n test
                    images). Official 60000/10000 train/test split; uint8 images (batch, 784).
csv                 path (required), target (last column), delimiter (","), task ("auto"),
                    num_classes (None), val_fraction (0), test_fraction (0), seed, standardize
npz                 path (required), task, num_classes, image_shape (None), val_fraction,
                    test_fraction, seed, standardize
text                path (required: a UTF-8 file), block_size (64), val_fraction (0.1): character
                    ids, the first 90 % for training (a :class:`fnn.data.text.TokenDataset`)
adder               digits (2), n_samples (all 10^(2n), at most 10,000), val_fraction (0.1),
                    test_fraction (0.1), seed: minGPT's a+b=c problems as digit rows
==================  =============================================================================

Validation and test splits are drawn from the training data with a fixed ``seed`` (see
:mod:`fnn.data.splits`); ``standardize=True`` is fitted on the training split only. Unknown names
or options, and bad values, raise :class:`DataError` (a ``ValueError``) with a one-line message.
See :mod:`fnn.data.synthetic`, :mod:`fnn.data.images`, :mod:`fnn.data.csv_file` and :mod:`fnn.data.npz_file` for each source.

Every name is imported on first use (:mod:`fnn.util.lazy`): ``import fnn.data`` loads nothing;
the names and the generated sets' tasks and default options (:mod:`fnn.data.names`) load
without NumPy (the config checks read them), the host-side loaders with NumPy, and the
on-device part (:func:`prepare_inputs`, :class:`Augment`, :func:`augment`,
:mod:`fnn.data.augmentation`) with JAX.
"""

from fnn.util.lazy import exports

__all__ = [
    "Augment",
    "DataError",
    "Dataset",
    "DownloadError",
    "IDXError",
    "NAMES",
    "augment",
    "check_dataset",
    "load",
    "prepare_inputs",
    "read_csv",
    "read_idx",
    "read_npz",
    "split_indices",
    "valid_options",
    "write_idx",
]

__getattr__, __dir__ = exports(__name__, {
    "fnn.data.names": ("NAMES", "IMAGE_NAMES", "FILE_NAMES", "TOKEN_NAMES", "MAX_CLASSES"),
    "fnn.data.loading": ("load", "valid_options"),
    "fnn.data.dataset": ("Dataset",),
    "fnn.data.idx": ("IDXError", "read_idx", "write_idx"),
    "fnn.data.images": ("DownloadError", "load_image_files"),
    "fnn.data.splits": ("build_dataset", "split_indices"),
    "fnn.data.synthetic": ("SYNTHETIC",),
    "fnn.data.csv_file": ("read_csv",),
    "fnn.data.npz_file": ("read_npz",),
    "fnn.data.peek": ("peek_targets",),
    "fnn.data.validate": ("DataError", "check_bool", "check_dataset", "check_float", "check_int",
                          "check_options"),
    "fnn.data.augmentation": ("Augment", "augment", "prepare_inputs"),
})
