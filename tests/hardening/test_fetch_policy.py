"""Attack: with --allow-file-urls, a user names another user's blob (or the store) by path."""

from __future__ import annotations

from pathlib import Path

import pytest

from elasticthought.config import config_from_env
from elasticthought.fetch import FetchError, FetchPolicy, fetch_bytes


def test_file_urls_never_reach_into_the_service_data(tmp_path: Path) -> None:
    data = tmp_path / "et-data"
    blob = data / "blobs" / "user~bob" / "model.caffemodel"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"secret weights")
    outside = tmp_path / "shared" / "ok.prototxt"
    outside.parent.mkdir()
    outside.write_text("name: 'ok'")
    policy = FetchPolicy.from_config(config_from_env(data_dir=str(data), allow_file_urls=True))
    for path in (blob, data / "elasticthought.db", data / "blobs" / ".." / "blobs" / "x"):
        with pytest.raises(FetchError, match="service's own data"):
            fetch_bytes(f"file://{path}", policy)
    (tmp_path / "link").symlink_to(blob)
    with pytest.raises(FetchError, match="service's own data"):
        fetch_bytes(f"file://{tmp_path / 'link'}", policy)
    assert fetch_bytes(f"file://{outside}", policy) == b"name: 'ok'"
