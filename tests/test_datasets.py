"""bpkit.datasets: the classic sets, the split, the files (CSV and FANN's format) and their errors."""

import subprocess
import sys

import numpy as np
import pytest

from bpkit import datasets


@pytest.mark.parametrize("name, shape_x, shape_y", [
    ("xor", (4, 2), (4, 1)), ("parity3", (8, 3), (8, 1)), ("parity4", (16, 4), (16, 1)),
    ("encoder8", (8, 8), (8, 8)), ("two_spirals", (194, 2), (194, 1)), ("iris", (90, 4), (90, 3)),
])
def test_dataset_shapes(name, shape_x, shape_y):
    d = datasets.load(name)
    assert d.x_train.shape == shape_x and d.y_train.shape == shape_y


def test_classic_definitions():
    p = datasets.load("parity3")
    assert np.array_equal(p.y_train[:, 0], p.x_train.sum(1) % 2)
    s = datasets.two_spirals()
    np.testing.assert_allclose(s.x_train[0], [0.0, 6.5])  # i = 0: angle 0, radius 6.5
    np.testing.assert_allclose(s.x_train[97], -s.x_train[0])  # the negation is class 0
    assert s.y_train[:97].all() and not s.y_train[97:].any()


def test_split_is_seeded_and_standardised_on_train():
    a, b, c = datasets.load("digits", seed=1), datasets.load("digits", seed=1), datasets.load("digits", seed=2)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    np.testing.assert_allclose(a.x_train.mean(0), 0, atol=1e-12)
    assert len(a.x_train) + len(a.x_val) + len(a.x_test) == 1797


def test_digits_are_scikit_learns_read_without_importing_it(monkeypatch):
    from sklearn.datasets import load_digits

    read = datasets.load("digits", seed=3)
    monkeypatch.setattr(datasets, "_digits_file", lambda: None)  # through scikit-learn's own loader
    loaded = datasets.load("digits", seed=3)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(read, field), getattr(loaded, field))
    x, y = load_digits(return_X_y=True)
    assert x.shape == (1797, 64) and read.y_train.shape[1] == 10 == len(set(y))
    code = 'import sys; from bpkit import datasets; datasets.load("digits"); print("sklearn" in sys.modules)'
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_csv_and_fann_files(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,label\n0,1,1\n1,1,0\n2,0,1\n3,1,0\n4,0,1\n")
    d = datasets.load_csv(tmp_path / "d.csv")
    assert d.inputs == 2 and d.outputs == 1
    (tmp_path / "x.data").write_text("2 2 1\n0 1\n1\n1 1\n0\n")
    f = datasets.load_fann(tmp_path / "x.data")
    np.testing.assert_array_equal(f.x_train, [[0, 1], [1, 1]])
    np.testing.assert_array_equal(f.y_train, [[1], [0]])


@pytest.mark.parametrize("loader, text, message", [
    (datasets.load_csv, "a,b,label\n0,1,1\n1,1\n", r"line 3 has 2 fields, the header has 3"),
    (datasets.load_csv, "a,b,label\n0,x,1\n", r"line 2 has a field that is not a number"),
    (datasets.load_csv, "a,b,label\n0,nan,1\n", r"non-finite value in its inputs, row 1"),
    (datasets.load_csv, "", r"empty file"),
    (datasets.load_fann, "2 2 1\n0 1\n1\n1 1 1\n0\n", r"line 4 has 3 values, an input line needs 2"),
    (datasets.load_fann, "3 2 1\n0 1\n1\n", r"promises 3 pairs \(6 lines\), the file has 2"),
])
def test_bad_data_files_name_the_line(tmp_path, loader, text, message):
    p = tmp_path / ("f.csv" if loader is datasets.load_csv else "f.data")
    p.write_text(text)
    with pytest.raises(ValueError, match=message):
        loader(p)


def test_unknown_dataset_lists_valid():
    with pytest.raises(ValueError, match=r"unknown data set 'mnist'; valid: xor, two_spirals"):
        datasets.load("mnist")


def test_a_csv_field_beyond_the_csv_modules_limit_is_one_line(tmp_path):
    p = tmp_path / "long.csv"
    p.write_text("a,y\n0,1\n" + "1" * 200_000 + ",0\n")
    with pytest.raises(ValueError, match=r"long.csv: line 3 cannot be read as CSV \(field larger than field limit"):
        datasets.load_csv(p)


def test_labels_implying_too_many_classes_are_refused_before_the_one_hot_is_made(tmp_path):
    import tracemalloc

    p = tmp_path / "many.csv"
    p.write_text("a,y\n" + "".join(f"{i},{i * 49}\n" for i in range(1000)))  # labels up to 48951
    tracemalloc.start()
    with pytest.raises(ValueError, match="labels up to 48951 mean 48952 classes: one-hot targets for 1000 examples "
                                         "would take 373 MiB; bpkit takes at most 10000 classes"):
        datasets.load_csv(p)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20  # refused from an estimate, not after making 373 MiB


def _fann_sets():
    from grids import fann_sets

    return fann_sets()


def test_fanns_own_files_are_read_by_their_content_whatever_their_name(tmp_path):
    folder = _fann_sets()
    d = datasets.load_file(folder / "parity8.train", test_path=folder / "parity8.test")
    assert d.x_train.shape == (256, 8) and d.y_train.shape == (256, 1) and d.x_test.shape == (256, 8)
    assert d.x_val is None  # the training file is all training data
    assert datasets.is_fann(folder / "thyroid.test") and not datasets.is_fann(_csv(tmp_path, "t.data"))
    assert datasets.load_file(_csv(tmp_path, "named-like-fann.data")).x_train.shape[1] == 2  # a CSV, by content


def _csv(folder, name, rows="0,0,0\n0,1,1\n1,0,1\n1,1,0\n" * 3):
    p = folder / name
    p.write_text("a,b,y\n" + rows)
    return p


def test_a_csv_test_file_is_standardised_on_the_training_file(tmp_path):
    train, test = _csv(tmp_path, "tr.csv"), _csv(tmp_path, "te.csv", "2,2,2\n0,0,0\n")
    d = datasets.load_file(train, test_path=test)
    assert d.y_train.shape == (12, 3) and d.y_test.shape == (2, 3)  # three classes, counted over both files
    np.testing.assert_allclose(d.x_test[1], (0 - 0.5) / 0.5)  # train mean 0.5, sd 0.5
    with pytest.raises(ValueError, match="the test file must be in the format of"):
        datasets.load_file(train, test_path=_fann_sets() / "parity8.test")


def test_a_test_file_of_other_widths_is_one_line(tmp_path):
    folder = _fann_sets()
    with pytest.raises(ValueError, match=r"robot.test: 48 inputs and 3 targets, but .*parity8.train has 8 and 1"):
        datasets.load_file(folder / "parity8.train", test_path=folder / "robot.test")
