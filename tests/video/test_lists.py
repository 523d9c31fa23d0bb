import logging
from pathlib import Path

import pytest

from deepnotes.core.paths import resolve_inside, resolve_listed
from deepnotes.video.config import TrainConfig
from deepnotes.video.data.lists import ListError, detect_format, read_list
from deepnotes.video.data.pipeline import class_names


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_video_list_paths_with_spaces_and_comments(tmp_path):
    _touch(tmp_path / "a b.mp4")
    _touch(tmp_path / "sub" / "c.mp4")
    lst = tmp_path / "l.txt"
    lst.write_text("# comment\na b.mp4 3\n\nsub/c.mp4 0\n")
    recs = read_list(lst)
    got = [(r.path.name, r.label, r.total_frames) for r in recs]
    assert got == [("a b.mp4", 3, None), ("c.mp4", 0, None)]
    assert recs[1].source == f"{lst}:4"


def test_rawframe_list_and_detection(tmp_path):
    (tmp_path / "f1").mkdir()
    lst = tmp_path / "raw.txt"
    lst.write_text("f1 30 2\n")
    assert detect_format(lst) == "rawframes"
    (rec,) = read_list(lst)
    assert rec.is_frames and rec.total_frames == 30 and rec.label == 2


def test_root_option(tmp_path):
    _touch(tmp_path / "data" / "v.mp4")
    lst = tmp_path / "lists" / "l.txt"
    lst.parent.mkdir()
    lst.write_text("v.mp4 1\n")
    with pytest.raises(ListError, match="l.txt:1.*does not exist"):
        read_list(lst)
    assert read_list(lst, root=tmp_path / "data")[0].path == (tmp_path / "data" / "v.mp4").resolve()


@pytest.mark.parametrize("line, message", [
    ("v.mp4", r"l.txt:2: expected 'path label'"),
    ("v.mp4 x", r"l.txt:2: label 'x' is not an integer"),
    ("v.mp4 5", r"l.txt:2: label 5 is outside the class range \[0, 5\)"),
    ("missing.mp4 1", r"l.txt:2: video .*missing.mp4 does not exist \(paths are relative to"),
    # read where the line points (mmaction2 joins the prefix with the line), so the error is that it is absent
    ("../outside.mp4 1", r"l.txt:2: video .*/\.\./outside.mp4 does not exist"),
    ("/no/such/dir/v.mp4 1", r"l.txt:2: video /no/such/dir/v.mp4 does not exist \(an absolute path\)"),
])
def test_errors_name_file_and_line(tmp_path, line, message):
    _touch(tmp_path / "v.mp4")
    lst = tmp_path / "l.txt"
    lst.write_text(f"v.mp4 0\n{line}\n")
    with pytest.raises(ListError, match=message):
        read_list(lst, num_classes=5, kind="video")


def test_empty_list_is_an_error(tmp_path):
    lst = tmp_path / "l.txt"
    lst.write_text("# nothing\n")
    with pytest.raises(ListError, match="no samples"):
        read_list(lst)


def test_byte_order_mark_is_not_part_of_the_first_path(tmp_path):
    _touch(tmp_path / "v.mp4")
    lst = tmp_path / "l.txt"
    lst.write_bytes("v.mp4 1\n".encode("utf-8-sig"))
    (rec,) = read_list(lst)
    assert rec.path.name == "v.mp4" and rec.label == 1


def test_negative_label_and_multi_label_lines_say_what_is_wrong(tmp_path):
    _touch(tmp_path / "v.mp4")
    lst = tmp_path / "l.txt"
    lst.write_text("v.mp4 -1\n")
    with pytest.raises(ListError, match=r"l.txt:1: label -1 is negative"):
        read_list(lst)
    # mmaction2's multi-label video lines: a video path is never a frames folder, and the error says why
    lst.write_text("v.mp4 1 3\n")
    assert detect_format(lst) == "video"
    with pytest.raises(ListError, match=r"l.txt:1: .*does not exist.*multi-label lists .* not supported"):
        read_list(lst)


def test_a_line_that_is_not_utf8_is_named(tmp_path):
    _touch(tmp_path / "v.mp4")
    lst = tmp_path / "l.txt"
    lst.write_bytes("v.mp4 0\nv.mp4 1\ncaf\u00e9.mp4 1\n".encode("latin-1"))
    with pytest.raises(ListError, match=r"l.txt:3: not UTF-8"):
        read_list(lst)


def test_links_are_followed_and_paths_outside_the_root_are_read_as_listed(tmp_path):
    disk = _touch(tmp_path / "disk" / "videos" / "a.mp4").parent
    data = tmp_path / "data"
    data.mkdir()
    (data / "videos").symlink_to(disk, target_is_directory=True)  # data on another disk, as users set up
    lst = data / "l.txt"
    lst.write_text("videos/a.mp4 0\n")
    (rec,) = read_list(lst)
    assert rec.path.resolve() == (disk / "a.mp4").resolve() and rec.entry == "videos/a.mp4"
    # a relative path that climbs out of the list's folder is the user's to list: it is read
    lst.write_text("videos/../../disk/videos/a.mp4 0\n")
    assert read_list(lst)[0].path.resolve() == (disk / "a.mp4").resolve()
    # an absolute path stays absolute whatever --root says, as mmaction2 reads it
    lst.write_text(f"{disk / 'a.mp4'} 0\n")
    for root in (None, tmp_path, data / "elsewhere"):
        (rec,) = read_list(lst, root=root)
        assert rec.path == disk / "a.mp4" and rec.entry == str(disk / "a.mp4")


def test_absolute_and_relative_lines_mix_and_relative_ones_follow_root(tmp_path):
    a = _touch(tmp_path / "elsewhere" / "a b.mp4")
    _touch(tmp_path / "data" / "sub" / "b.mp4")
    lst = tmp_path / "lists" / "l.txt"
    lst.parent.mkdir()
    lst.write_text(f"{a} 1\nsub/b.mp4 0\n")
    recs = read_list(lst, root=tmp_path / "data")
    assert [r.path for r in recs] == [a, (tmp_path / "data" / "sub" / "b.mp4").resolve()]
    assert [r.label for r in recs] == [1, 0]


def test_resolve_listed_reads_as_written_and_resolve_inside_still_confines(tmp_path):
    assert resolve_listed(tmp_path, "/x/y.mp4") == Path("/x/y.mp4")
    assert resolve_listed(tmp_path, "a/../b.mp4") == tmp_path.resolve() / "a/../b.mp4"
    with pytest.raises(ValueError, match="outside"):
        resolve_inside(tmp_path, "/x/y.mp4")
    with pytest.raises(ValueError, match="outside"):
        resolve_inside(tmp_path, "a/../../b")


def _cfg(lst, **kw):
    return TrainConfig(model="tsn", train=str(lst), out="", **kw)


def test_an_inferred_class_count_is_said_with_the_line_of_the_largest_label(tmp_path, caplog):
    _touch(tmp_path / "v.mp4")
    lst = tmp_path / "train.txt"
    lst.write_text("v.mp4 0\nv.mp4 7\nv.mp4 99\nv.mp4 3\n")
    recs = read_list(lst)
    with caplog.at_level(logging.WARNING, logger="deepnotes.video"):
        names = class_names(_cfg(lst), recs)
    assert names == [str(i) for i in range(100)]
    assert (f"no classes.txt: 100 classes inferred from the largest label 99 at {lst}:3; pass --num-classes "
            "or a class list") in caplog.text
    # --num-classes overrides the inference, silently; a label at or above it is an error naming the line
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="deepnotes.video"):
        assert class_names(_cfg(lst, num_classes=120), recs) == [str(i) for i in range(120)]
    assert "inferred" not in caplog.text
    with pytest.raises(ListError, match=r"train.txt:3: label 99 is outside the class range \[0, 8\)"):
        read_list(lst, num_classes=len(class_names(_cfg(lst, num_classes=8), recs)))
    # a class list is used as it is, and must agree with --num-classes when both are given
    (tmp_path / "classes.txt").write_text("".join(f"c{i}\n" for i in range(100)))
    assert class_names(_cfg(lst), recs)[99] == "c99"
    with pytest.raises(ListError, match="--num-classes 8 but the class list names 100 classes"):
        class_names(_cfg(lst, num_classes=8), recs)
    with pytest.raises(ValueError, match="--num-classes must be at least 1"):
        _cfg(lst, num_classes=0)


def test_train_cli_names_the_line_of_a_label_beyond_num_classes(motion_data, tmp_path):
    from typer.testing import CliRunner

    from deepnotes.video.cli import app

    lst = tmp_path / "train.txt"  # no classes.txt beside it
    lines = [f"{motion_data['train'].parent / ln.rsplit(' ', 1)[0]} {ln.rsplit(' ', 1)[1]}"
             for ln in motion_data["train"].read_text().splitlines()]
    lst.write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(app, ["train", "--model", "tsn", "--train", str(lst), "--out",
                                   str(tmp_path / "run"), "--num-classes", "3", "--workers", "0",
                                   "--device", "cpu"])
    assert res.exit_code == 2
    first_bad = next(i for i, ln in enumerate(lines) if int(ln.rsplit(" ", 1)[1]) >= 3)
    assert f"train.txt:{first_bad + 1}: label" in res.output and "[0, 3)" in res.output
