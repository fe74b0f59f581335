"""Check handgrad's MNIST-1D generator against the reference one.

    pip install mnist1d        # the reference generator (Greydanus); needs SciPy
    python benchmarks/verify_mnist1d.py [--write-fixture]

Run on one machine, both generators use the same NumPy and the same processor paths, so they must
agree bit for bit; the table says whether they do and the largest difference. Across machines the
signals differ in their last bits (exp, sin and sums round differently on AVX-512 and AVX2), so
tests/test_data.py compares them with the reference values in tests/fixtures/mnist1d_reference.npz
to 1e-12 and the labels exactly. ``--write-fixture`` rewrites that file from the reference package.
"""

import argparse
from pathlib import Path

import numpy as np

from handgrad.data import make_mnist1d

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "mnist1d_reference.npz"
RAMP = np.linspace(-1, 1, 40)


def write_fixture(reference: dict) -> None:
    arrays = {"y": np.asarray(reference["y"]).astype(np.int8), "y_test": np.asarray(reference["y_test"]).astype(np.int8)}
    for key in ("x", "x_test"):
        signals = np.asarray(reference[key], dtype=np.float64)
        arrays[f"{key}_every_10th_row"] = signals[::10]
        arrays[f"{key}_row_sums"] = signals.sum(axis=1)
        arrays[f"{key}_row_ramps"] = signals @ RAMP
    np.savez_compressed(FIXTURE, **arrays)
    print(f"wrote {FIXTURE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write-fixture", action="store_true", help=f"rewrite {FIXTURE.name} from the reference package")
    args = parser.parse_args()
    (x, y), (x_test, y_test) = make_mnist1d()
    ours = {"x": x, "y": y, "x_test": x_test, "y_test": y_test}
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise SystemExit("the reference package is not installed (pip install mnist1d)") from None
    reference = make_dataset(get_dataset_args())
    print("| array | shape | identical on this machine | max abs difference |")
    print("|---|---|---|---|")
    for key, array in ours.items():
        ref = np.asarray(reference[key]).astype(array.dtype)
        same = array.shape == ref.shape and np.array_equal(array, ref)
        diff = float(np.max(np.abs(array - ref))) if array.shape == ref.shape else float("nan")
        print(f"| {key} | {array.shape} | {same} | {diff:.3g} |")
    if args.write_fixture:
        write_fixture(reference)


if __name__ == "__main__":
    main()
