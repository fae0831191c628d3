"""The float16 feature file: what a project's vectors survive (rewrites, crashes, old projects)."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from index.features import FeatureFile, FeatureFileError
from index.project import Project
from index.types import Origin

MODEL = "openclip:tiny/random"


def unit_rows(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_vectors_come_back_by_item_id_as_a_read_only_float16_map(tmp_path):
    features = FeatureFile(tmp_path, MODEL)
    vectors = unit_rows(6)
    features.append([1, 2, 3], vectors[:3])
    features.append([4, 5, 6], vectors[3:])
    ids, rows = features.read()
    assert ids.tolist() == [1, 2, 3, 4, 5, 6] and rows.dtype == np.float16
    assert isinstance(rows, np.memmap) and not rows.flags.writeable
    assert np.abs(rows.astype(np.float32) - vectors).max() < 1e-3
    some_ids, some = features.read([5, 2, 99])  # unknown ids are simply absent
    assert some_ids.tolist() == [2, 5] and np.array_equal(some, rows[[1, 4]])


def test_an_item_written_again_keeps_its_last_vector_and_compact_drops_the_old_row(tmp_path):
    features = FeatureFile(tmp_path, MODEL)
    first, second = unit_rows(3, seed=1), unit_rows(1, seed=2)
    features.append([3, 1, 2], first)
    features.append([1], second)
    ids, rows = features.read()
    assert ids.tolist() == [1, 2, 3]
    assert np.allclose(rows[0], second[0], atol=1e-3) and np.allclose(rows[2], first[0], atol=1e-3)
    assert features.compact() == 1
    again_ids, again = features.read()
    assert again_ids.tolist() == [1, 2, 3] and np.array_equal(again, rows) and isinstance(again, np.memmap)


def test_rows_written_out_of_order_are_put_in_order_once_so_reads_map_the_file_again(tmp_path):
    features = FeatureFile(tmp_path, MODEL)
    vectors = unit_rows(4, seed=4)
    features.append([3, 4], vectors[2:])  # as shards of a Ray run may arrive
    features.append([1, 2], vectors[:2])
    ids, rows = features.read()
    assert ids.tolist() == [1, 2, 3, 4] and not isinstance(rows, np.memmap)  # a copy, each read
    assert features.compact() == 0  # nothing dropped, but reordered
    ids, rows = features.read()
    assert isinstance(rows, np.memmap) and np.abs(rows.astype(np.float32) - vectors).max() < 1e-3
    size = features.rows_path.stat().st_mtime_ns
    assert features.compact() == 0 and features.rows_path.stat().st_mtime_ns == size  # in order: left alone


def test_an_embedding_run_leaves_the_feature_file_in_order(project, photos_dir):
    from tools.embed import embed_items
    from tools.ingest import ingest
    from tools.models import load_backend

    ingest(project, [str(photos_dir)])
    ids = [item.id for item in project.store.items()]
    backend = load_backend(MODEL, "cpu")
    embed_items(project, backend, ids[len(ids) // 2:])
    embed_items(project, backend, ids[: len(ids) // 2])  # the earlier ids after the later ones
    read_ids, rows = project.store.embeddings(MODEL, dtype=None)
    assert read_ids.tolist() == sorted(ids) and isinstance(rows, np.memmap)


def test_a_crash_between_rows_and_ids_loses_only_the_unfinished_write(tmp_path):
    features = FeatureFile(tmp_path, MODEL)
    vectors = unit_rows(4, seed=3)
    features.append([1, 2], vectors[:2])
    with open(features.rows_path, "ab") as rows:  # a crash: a row written, its id not
        rows.write(vectors[2].astype(np.float16).tobytes())
    with open(features.ids_path, "ab") as ids:  # and half an id
        ids.write(b"\x07\x00\x00")
    assert features.read()[0].tolist() == [1, 2]
    features.append([4], vectors[3:])  # the next write cuts the leftovers off
    ids, rows = features.read()
    assert ids.tolist() == [1, 2, 4] and np.allclose(rows[2], vectors[3], atol=1e-3)


def test_bad_input_is_refused_with_what_to_do(tmp_path):
    features = FeatureFile(tmp_path, MODEL)
    features.append([1], unit_rows(1))
    with pytest.raises(FeatureFileError, match="length 4.*length 8"):
        features.append([2], unit_rows(1, dim=4))
    with pytest.raises(FeatureFileError, match="2 item ids"):
        features.append([2, 3], unit_rows(1))
    with pytest.raises(FeatureFileError, match="float16 cannot hold"):
        features.append([2], np.full((1, 8), 1e6, dtype=np.float32))
    assert features.read()[0].tolist() == [1]  # nothing of the refused writes was kept
    features.meta_path.write_text(json.dumps({"format": 99, "model": MODEL, "dim": 8}))
    with pytest.raises(FeatureFileError, match="delete .* run 'labelchat suggest'"):
        features.read()


def test_a_project_that_kept_its_vectors_in_sqlite_moves_them_out_once(tmp_path):
    folder = tmp_path / "project"
    with Project(folder) as project:
        ids = [project.store.add_item(sha256=f"{i:064x}", phash="0", media_path=f"media/{i}.png", width=8, height=8,
                                      format="PNG", bytes=10, origin=Origin(f"{i}.png"))[0].id for i in range(3)]
    vectors = unit_rows(3)
    db = sqlite3.connect(folder / "project.db")  # what an older labelchat wrote
    db.executemany("INSERT INTO embeddings(model, item_id, vector, created_at) VALUES (?, ?, ?, 'then')",
                   [(MODEL, i, v.tobytes()) for i, v in zip(ids, vectors)])
    db.commit()
    db.close()
    with Project(folder) as project:
        found_ids, found = project.store.embeddings(MODEL)
        assert found_ids.tolist() == ids and np.abs(found - vectors).max() < 1e-3
        assert project.store._read("SELECT count(*) FROM embeddings")[0][0] == 0
    with Project(folder) as project:  # opened again: nothing moved twice
        assert project.store.embedding_count(MODEL) == 3


def test_probabilities_in_parts_are_the_head_s_probabilities():
    from tools.models.base import BridgeHead, LinearHead, l2_normalize, probabilities_in_parts

    head = LinearHead(("a", "b", "c"), l2_normalize(unit_rows(3, seed=5)), 30.0)
    features = unit_rows(50, seed=6).astype(np.float16)
    whole = head.probabilities(features.astype(np.float32))
    in_parts = probabilities_in_parts(head, features, part=7)  # 8 parts, on threads
    assert np.allclose(in_parts, whole, atol=1e-6) and in_parts.dtype == whole.dtype
    bridge = BridgeHead(("a", "b"), unit_rows(4, seed=7), np.zeros(4), np.full((4, 2), 0.5))
    assert probabilities_in_parts(bridge, features[:, :8], part=7).dtype == bridge.probabilities(features[:, :8]).dtype
