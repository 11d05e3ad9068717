"""The ONNX export cache is safe when several processes prepare it at once (pytest-xdist, uvicorn workers)."""

from __future__ import annotations

import multiprocessing as mp
import shutil
from pathlib import Path

import pytest

from service.embeddings import MINILM, _export_onnx, resolve_model_path
from service.settings import REPO_ROOT

pytestmark = pytest.mark.slow  # two processes export and quantize the model from scratch: `make test` only


def _prepare(model_dir: str, out_dir: str) -> str:
    return str(_export_onnx(Path(model_dir), Path(out_dir), quantize=True))


def test_two_processes_quantizing_on_a_fresh_cache_both_get_a_loadable_model(tmp_path):
    import onnxruntime as ort

    model_dir = Path(resolve_model_path(MINILM))
    shared = REPO_ROOT / "data" / "cache" / "onnx"
    first = Path(_prepare(str(model_dir), str(shared)))  # the fp32 export is slow: reuse the shared one
    fp32 = first.with_name(first.name.replace(".int8.onnx", ".onnx"))
    shutil.copy(fp32, tmp_path / fp32.name)  # a cache with only the fp32 model: both processes must quantize
    with mp.get_context("spawn").Pool(2) as pool:
        paths = pool.starmap(_prepare, [(str(model_dir), str(tmp_path))] * 2)
    assert paths[0] == paths[1] == str(tmp_path / first.name)
    ort.InferenceSession(paths[0], providers=["CPUExecutionProvider"])
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob("*-inferred.onnx"))
