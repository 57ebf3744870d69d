"""The Hub helpers shared by `zoo publish` and `bench leaderboard publish`: repo ids, sizes,
cards and the one uploader."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import yaml

from modelzoo.errors import ZooError
from modelzoo.hub.cli import parse_size
from modelzoo.hub.upload import PublishError, check_repo_id, upload_folder
from modelzoo.storage.card import dataset_card


@pytest.mark.parametrize("repo_id", ["user/name", "org-1/zoo.v2", "a/b_c"])
def test_valid_repo_ids(repo_id: str) -> None:
    check_repo_id(repo_id)


@pytest.mark.parametrize("repo_id", ["name", "a/b/c", "user/..", "user/na--..me", "/x", "u/x y",
                                     "u/" + "x" * 100])
def test_invalid_repo_ids_say_what_to_give(repo_id: str) -> None:
    with pytest.raises(ZooError, match="must look like user/name"):
        check_repo_id(repo_id)


@pytest.mark.parametrize(("text", "n"), [("500MB", 500_000_000), ("1GiB", 2**30),
                                         ("1234", 1234), ("64KiB", 65_536), (" 2 MB ", 2_000_000)])
def test_parse_size(text: str, n: int) -> None:
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["abc", "0", "1.5GB", "MB", "-3MB"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_size(text)


def test_dataset_card_front_matter_round_trips() -> None:
    configs = [{"config_name": "default", "default": True,
                "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}]
    text = dataset_card("# Title\n\nprose\n", configs=configs, license="mit", tags=["a", "b"])
    assert text.startswith("---\n")
    _, front, body = text.split("---\n", 2)
    assert yaml.safe_load(front) == {"configs": configs, "license": "mit", "tags": ["a", "b"]}
    assert body == "\n# Title\n\nprose\n"


def test_upload_offline_fails_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PublishError, match="offline mode is enabled"):
        upload_folder(tmp_path, repo_id="user/name", commit_message="x")
    with pytest.raises(ZooError, match="must look like user/name"):
        upload_folder(tmp_path, repo_id="not a repo", commit_message="x")


def test_leaderboard_publish_uploads_through_the_shared_uploader() -> None:
    import benchmarks.leaderboard.publish as lb

    assert lb.hub_upload is upload_folder
