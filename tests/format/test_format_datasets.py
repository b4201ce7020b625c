"""generate_datasets_manifest: datasets.json from the dataset folders of an exports root."""

from __future__ import annotations

import inspect
import json
import shutil

import pytest
from format_handmade import edit_json
from make_fixtures import REFERENCE_FIXTURES

from cellucid_nb.format.datasets import generate_datasets_manifest
from cellucid_nb.format.validator import validate_export


@pytest.fixture
def root(handmade_cache, tmp_path):
    """An exports root with two hand-made datasets (b_second listed after a_first) and a stray folder."""
    src, _ = handmade_cache()
    for folder, dataset_id in (("b_second", "second"), ("a_first", "first")):
        shutil.copytree(src, tmp_path / folder)
        edit_json(tmp_path / folder / "dataset_identity.json",
                  lambda m, i=dataset_id: m.update(id=i, name=f"Dataset {i}"))
    (tmp_path / "notes").mkdir()  # no identity: skipped
    (tmp_path / ".staging-x").mkdir()  # hidden staging folder: skipped
    shutil.copytree(src, tmp_path / ".staging-x" / "inner")
    return tmp_path


def test_writes_sorted_manifest_with_stats(root):
    manifest = generate_datasets_manifest(root)
    assert manifest == json.loads((root / "datasets.json").read_text())
    assert manifest["version"] == 1
    assert manifest["default"] == "first"
    assert manifest["datasets"] == [
        {"id": "first", "path": "a_first/", "name": "Dataset first", "n_cells": 50, "n_genes": 3},
        {"id": "second", "path": "b_second/", "name": "Dataset second", "n_cells": 50, "n_genes": 3},
    ]
    assert validate_export(root) == []


def test_default_choice_and_aliases(root):
    assert generate_datasets_manifest(root, default_dataset="second")["default"] == "second"
    assert generate_datasets_manifest(root, default="second", write=False)["default"] == "second"
    # positional order of the reference: exports_dir, output_filename, default_dataset
    manifest = generate_datasets_manifest(root, "other.json", "second")
    assert (root / "other.json").is_file() and manifest["default"] == "second"
    with pytest.raises(ValueError, match="'nope'.*first"):
        generate_datasets_manifest(root, default_dataset="nope")
    with pytest.raises(ValueError, match="disagree"):
        generate_datasets_manifest(root, default_dataset="first", default="second")


def test_write_false_leaves_disk_untouched(root):
    generate_datasets_manifest(root, write=False)
    assert not (root / "datasets.json").exists()


def test_duplicate_ids_name_both_folders(root):
    edit_json(root / "b_second" / "dataset_identity.json", lambda m: m.update(id="first"))
    with pytest.raises(ValueError, match="'first'.*'a_first'.*'b_second'"):
        generate_datasets_manifest(root)
    assert not (root / "datasets.json").exists()


def test_empty_and_missing_roots(tmp_path):
    with pytest.raises(ValueError, match="no dataset folders"):
        generate_datasets_manifest(tmp_path)
    with pytest.raises(FileNotFoundError):
        generate_datasets_manifest(tmp_path / "absent")


def test_invalid_identity_is_skipped_with_a_warning(root):
    (root / "b_second" / "dataset_identity.json").write_text("{broken")
    with pytest.warns(UserWarning, match="b_second"):
        manifest = generate_datasets_manifest(root)
    assert [d["id"] for d in manifest["datasets"]] == ["first"]


def test_same_output_as_the_reference_on_reference_exports(tmp_path):
    from cellucid.prepare_data import generate_datasets_manifest as reference
    from make_fixtures import quiet

    for name in ("plain", "gzip_q8"):
        shutil.copytree(REFERENCE_FIXTURES / name, tmp_path / name)
    with quiet():
        reference(tmp_path, "reference.json")
    ours = generate_datasets_manifest(tmp_path)
    assert ours == json.loads((tmp_path / "reference.json").read_text())
    ours_params = list(inspect.signature(generate_datasets_manifest).parameters)
    assert ours_params[:3] == list(inspect.signature(reference).parameters)


def test_a_linked_dataset_folder_is_skipped_with_a_warning(root, handmade_cache, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "private"
    shutil.copytree(handmade_cache()[0], outside)
    (root / "c_link").symlink_to(outside, target_is_directory=True)
    with pytest.warns(UserWarning, match=r"skipping c_link: it is a symbolic link"):
        manifest = generate_datasets_manifest(root, write=False)
    assert [d["path"] for d in manifest["datasets"]] == ["a_first/", "b_second/"]
