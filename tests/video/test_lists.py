import pytest

from deepnotes.video.data.lists import ListError, detect_format, read_list


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
    ("missing.mp4 1", r"l.txt:2: video .*missing.mp4 does not exist"),
    ("../outside.mp4 1", r"l.txt:2: .*outside"),
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


def test_links_inside_the_root_are_followed_and_absolute_paths_outside_it_refused(tmp_path):
    disk = _touch(tmp_path / "disk" / "videos" / "a.mp4").parent
    data = tmp_path / "data"
    data.mkdir()
    (data / "videos").symlink_to(disk, target_is_directory=True)  # data on another disk, as users set up
    lst = data / "l.txt"
    lst.write_text("videos/a.mp4 0\n")
    (rec,) = read_list(lst)
    assert rec.path.resolve() == (disk / "a.mp4").resolve()
    lst.write_text("videos/../../disk/videos/a.mp4 0\n")
    with pytest.raises(ListError, match="outside"):
        read_list(lst)
    lst.write_text(f"{disk / 'a.mp4'} 0\n")
    with pytest.raises(ListError, match="absolute paths must lie inside --root"):
        read_list(lst)
    assert read_list(lst, root=tmp_path)[0].path == disk / "a.mp4"
