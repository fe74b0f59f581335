"""Check handgrad's MNIST-1D generator against the reference one, bit for bit.

    pip install mnist1d        # the reference generator (Greydanus); needs scipy
    python benchmarks/verify_mnist1d.py

Prints whether every array is identical and the SHA-256 hashes that tests/test_data.py pins,
so the test keeps checking the same thing on machines without the reference package.
"""

import hashlib

import numpy as np

from handgrad.data import make_mnist1d


def sha256(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def main() -> None:
    (x, y), (x_test, y_test) = make_mnist1d()
    ours = {"x": x, "y": y, "x_test": x_test, "y_test": y_test}
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        print("the reference package is not installed (pip install mnist1d); handgrad's hashes:")
        for key, array in ours.items():
            print(f"  {key:7s} {sha256(array)}")
        return
    reference = make_dataset(get_dataset_args())
    print("| array | shape | identical | max abs difference | sha256 (handgrad) |")
    print("|---|---|---|---|---|")
    for key, array in ours.items():
        ref = np.asarray(reference[key]).astype(array.dtype)
        same = array.shape == ref.shape and np.array_equal(array, ref)
        diff = float(np.max(np.abs(array - ref))) if array.shape == ref.shape else float("nan")
        print(f"| {key} | {array.shape} | {same} | {diff:.3g} | {sha256(array)} |")


if __name__ == "__main__":
    main()
