"""pipelines.datasets.ownership: --overwrite deletes only the files a fewframes job wrote."""

import json

import pytest

from pipelines.datasets import ownership

CLAIMS = ownership.Claims(
    "dataset",
    files=("manifest.json",),
    shards=(("parquet/part", ".parquet"),),
    trees=("parquet/beam-temp-part-", "transform/transform_fn/"),
)
NOT_OURS, HINT = "are not ours", "choose another --output"


def _files(root) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _write(root, names) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"contents of {name}")


def _record(root) -> dict:
    return json.loads((root / ownership.OWNED_NAME).read_text())


def test_claims_own_exact_names_beam_shards_and_whole_trees_only():
    for name in (
        "manifest.json",
        "parquet/part-00000-of-00002.parquet",
        "parquet/part-123456-of-200000.parquet",  # more than 5 digits: Beam widens the number
        "parquet/beam-temp-part-0a1b2c/3d4e.parquet",
        "transform/transform_fn/saved_model.pb",
    ):
        assert CLAIMS.owns(name), name
    for name in (
        "manifest.json.bak",
        "parquet/part-0000-of-0002.parquet",  # 4 digits: not Beam's shard name
        "parquet/part-00000-of-00002.parquet.tmp",
        "parquet/partial-00000-of-00002.parquet",
        "parquet/part-00000-of-00002-notes.parquet",
        "parquet/beam-temp-notes/x",
        "transform/transform_fn",  # the tree's directory name alone is not under it
        "notes.txt",
    ):
        assert not CLAIMS.owns(name), name


def test_a_record_round_trips_and_only_strings_are_taken_from_it():
    assert ownership.Claims.from_dict(json.loads(json.dumps(CLAIMS.to_dict()))) == CLAIMS
    for bad in (
        [],
        {"files": ["manifest.json"]},  # no kind
        {"kind": "dataset", "files": [{"__class__": "os.system"}]},
        {"kind": "dataset", "trees": [""]},  # an empty tree would own everything
        {"kind": "dataset", "shards": [["part", ".parquet", "extra"]]},
        {"kind": "dataset", "shards": [["part", 5]]},
    ):
        with pytest.raises(ValueError):
            ownership.Claims.from_dict(bad)


def test_claim_on_a_new_output_records_what_the_run_may_write_and_commit_the_files_it_wrote(tmp_path):
    output = tmp_path / "ds"
    ownership.claim(str(output) + "/", False, CLAIMS, NOT_OURS, HINT)
    assert _record(output) == {**CLAIMS.to_dict(), "fewframes_owned": 1}
    _write(output, ["manifest.json", "parquet/part-00000-of-00001.parquet"])
    ownership.commit(str(output), CLAIMS)
    assert _record(output) == {
        "kind": "dataset",
        "files": ["manifest.json", "parquet/part-00000-of-00001.parquet"],
        "shards": [],
        "trees": [],
        "fewframes_owned": 1,
    }


def test_files_in_the_output_are_refused_without_overwrite_and_nothing_is_deleted(tmp_path):
    _write(tmp_path, ["manifest.json", "parquet/part-00000-of-00001.parquet"])
    before = _files(tmp_path)
    with pytest.raises(ValueError, match=f"^{tmp_path} already holds files \\(2\\); pass --overwrite"):
        ownership.claim(str(tmp_path), False, CLAIMS, NOT_OURS, HINT)
    assert _files(tmp_path) == before


def test_overwrite_deletes_the_earlier_runs_files_and_the_directories_they_emptied(tmp_path):
    output = tmp_path / "ds"
    ownership.claim(str(output), False, CLAIMS, NOT_OURS, HINT)
    crashed = ["parquet/part-00000-of-00002.parquet", "parquet/beam-temp-part-0a1b/deep/3c4d.parquet"]
    _write(output, crashed)  # a run that crashed mid-write: no manifest, no commit
    assert ownership.check(str(output), True, CLAIMS, NOT_OURS, HINT) == [
        ownership.OWNED_NAME,
        *sorted(crashed),
    ]
    assert _files(output).keys() == {ownership.OWNED_NAME, *crashed}  # check deletes nothing
    ownership.claim(str(output), True, CLAIMS, NOT_OURS, HINT)
    assert sorted(p.relative_to(output).as_posix() for p in output.rglob("*")) == [ownership.OWNED_NAME]


def test_overwrite_refuses_naming_every_file_the_earlier_run_did_not_write(tmp_path):
    output = tmp_path / "ds"
    ownership.claim(str(output), False, CLAIMS, NOT_OURS, HINT)
    mine = [f"parquet/note{i}.txt" for i in range(7)]
    _write(output, ["manifest.json", *mine])
    before = _files(output)
    with pytest.raises(ValueError) as refused:
        ownership.claim(str(output), True, CLAIMS, NOT_OURS, HINT)
    assert str(refused.value) == (
        f"{output} holds files that are not ours: parquet/note0.txt, parquet/note1.txt, parquet/note2.txt, "
        "parquet/note3.txt, parquet/note4.txt and 2 more; choose another --output"
    )
    assert _files(output) == before


def test_an_output_recorded_by_another_kind_of_job_or_an_unreadable_record_is_refused(tmp_path):
    output = tmp_path / "out"
    evaluation = ownership.Claims("evaluation", files=("manifest.json",))
    ownership.claim(str(output), False, evaluation, NOT_OURS, HINT)
    _write(output, ["manifest.json"])
    with pytest.raises(ValueError, match=r"holds files that are not ours \(a fewframes evaluation output\)"):
        ownership.claim(str(output), True, CLAIMS, NOT_OURS, HINT)
    (output / ownership.OWNED_NAME).write_text('{"kind": "dataset", "files": "manifest.json"')
    with pytest.raises(ValueError, match=rf"{ownership.OWNED_NAME} cannot be read \(.*\); {HINT}$"):
        ownership.claim(str(output), True, CLAIMS, NOT_OURS, HINT)
    assert (output / "manifest.json").exists()


def test_an_output_without_a_record_counts_as_owned_only_when_the_claims_name_every_file(tmp_path):
    _write(tmp_path, ["manifest.json", "parquet/part-00003-of-00004.parquet"])
    ownership.claim(str(tmp_path), True, CLAIMS, NOT_OURS, HINT, error=KeyError)
    assert _files(tmp_path).keys() == {ownership.OWNED_NAME}
    _write(tmp_path, ["manifest.json", "thesis.tex"])
    (tmp_path / ownership.OWNED_NAME).unlink()
    with pytest.raises(KeyError, match="not ours: thesis.tex;"):
        ownership.claim(str(tmp_path), True, CLAIMS, NOT_OURS, HINT, error=KeyError)
    assert (tmp_path / "manifest.json").exists() and (tmp_path / "thesis.tex").exists()


def test_a_glob_in_the_output_a_link_inside_it_or_a_file_as_it_is_refused(tmp_path):
    _write(tmp_path, ["run1/manifest.json"])
    with pytest.raises(ValueError, match=r"may not hold glob characters \(\*\?\[\)"):
        ownership.claim(str(tmp_path / "run?"), True, CLAIMS, NOT_OURS, HINT)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "run1" / "parquet").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(
        ValueError, match=r"holds a link, parquet -> .*elsewhere; jobs do not write through links"
    ):
        ownership.list_files(str(tmp_path / "run1"))
    with pytest.raises(ValueError, match="is a file, not a directory"):
        ownership.check(str(tmp_path / "run1" / "manifest.json"), True, CLAIMS, NOT_OURS, HINT)
    assert ownership.list_files(str(tmp_path / "missing")) == []
    assert ownership.check(str(tmp_path / "missing"), False, CLAIMS, NOT_OURS, HINT) == []
