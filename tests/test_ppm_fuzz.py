"""Property-based fuzzing of the .ppm header parser: whatever bytes a file holds, reading
its header either succeeds with exactly what a valid header says or fails with one
ScrollError line naming the file; never another exception, never a hang."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings, strategies as st

from scrollzarr.errors import ScrollError
from scrollzarr.ppm import PIXEL_BYTES, read_header

#: Examples per property (SCROLLZARR_FUZZ_EXAMPLES raises it for a longer run).
EXAMPLES = int(os.environ.get("SCROLLZARR_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

KEYS = ["width", "height", "dim", "ordered", "type", "version", "Width", "", "w idth"]
VALUES = st.one_of(
    st.integers(-3, 10).map(str), st.sampled_from(["6", "true", "double", "1", "", "x",
                                                 "1e3", "0x10", " 7 ", "9" * 400, "nan"]),
    st.text(max_size=12))
LINE = st.one_of(
    st.tuples(st.sampled_from(KEYS), st.sampled_from([": ", ":", " = ", ""]), VALUES).map(
        lambda t: (t[0] + t[1] + t[2]).encode("utf-8", "surrogatepass")),
    st.sampled_from([b"# comment", b"", b"<>", b"\xff\xfe", b"\x00", b"key: \xc3\x28"]),
    st.binary(max_size=20))


def write(tmp_path, data: bytes):
    path = tmp_path / "fuzz.ppm"
    path.write_bytes(data)
    return path


def check(path) -> None:
    try:
        header = read_header(path)
    except ScrollError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith(str(path)), message
        return
    # accepted: the body is exactly what the header says it is
    assert header.width >= 1 and header.height >= 1
    assert os.path.getsize(path) - header.body_offset == \
        header.width * header.height * PIXEL_BYTES


@FUZZ
@given(data=st.binary(max_size=600))
def test_random_bytes_never_crash_the_header_parser(tmp_path, data):
    check(write(tmp_path, data))


@FUZZ
@given(lines=st.lists(LINE, max_size=12), sep=st.sampled_from([b"\n", b"\r\n"]),
       end=st.booleans(), body=st.integers(0, 3 * PIXEL_BYTES))
def test_header_like_lines_are_accepted_or_refused_in_one_line(tmp_path, lines, sep, end,
                                                                  body):
    text = sep.join(lines) + (sep + b"<>" + sep if end else b"")
    check(write(tmp_path, text + b"\0" * body))


@FUZZ
@given(width=st.integers(1, 4), height=st.integers(1, 4), extra=st.integers(-49, 49))
def test_a_valid_header_is_refused_exactly_when_the_body_size_is_wrong(tmp_path, width,
                                                                         height, extra):
    head = (f"width: {width}\nheight: {height}\ndim: 6\nordered: true\ntype: double\n"
            "version: 1\n<>\n").encode()
    size = width * height * PIXEL_BYTES + extra
    path = write(tmp_path, head + b"\0" * max(size, 0))
    if extra == 0:
        header = read_header(path)
        assert (header.width, header.height, header.body_offset) == (width, height, len(head))
    else:
        try:
            read_header(path)
        except ScrollError as exc:
            assert "body" in str(exc) and "\n" not in str(exc)
        else:
            raise AssertionError("a wrong body size was accepted")
